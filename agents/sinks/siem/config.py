"""The SIEM sink's section, `[sinks.siem]`: its checks, and what the seed's settings make of it."""

from __future__ import annotations

import ipaddress
from typing import Literal, Self
from urllib.parse import urlsplit

import msgspec

from auditship.agents.section import Positive
from auditship.agents.sinks.base import SinkConfig
from shipper.seed import SeedSettings


class SiemSinkConfig(SinkConfig):
    enabled: bool = False
    destination_kind: Literal["generic", "splunk_hec", "elasticsearch"] = msgspec.field(
        default="generic", name="format"
    )
    endpoint: str = ""
    """The collector's URL: the generic JSON endpoint, HEC's base URL, or Elasticsearch's."""
    api_key: str = ""
    """generic: sent in `api_key_header`; splunk_hec: the HEC token; elasticsearch: an API key."""
    api_key_header: str = "X-API-Key"
    payload: Literal["native", "ocsf"] = "native"
    index: str = ""
    source: str = "auditship"
    sourcetype: str = "auditship:event"
    hec_ack: bool = False
    """Splunk indexer acknowledgement: a batch counts as delivered only once acknowledged."""
    hec_ack_timeout_s: float = 30.0
    """How long to wait for a batch's acknowledgement before sending it again."""
    verify_tls: bool = True
    ca_file: str = ""
    allow_insecure: bool = False
    """An http:// endpoint off this host with an api_key is refused (the key would cross the network in
    clear) unless this is true."""
    timeout_s: float = 10.0
    batch_size: Positive = 500
    """Events per request. Each request costs the sink about 0.4 ms of CPU (httpx) whatever it
    carries, against 3-4 us per event: at 50 a request the sink tops out near 50,000 events/s on a
    small machine, at 500 past 100,000 (`python -m bench sinks --only hec bulk`). HEC and `_bulk`
    are built for batches of hundreds to thousands; 500 typical events are about 350 kB, under
    `max_batch_bytes`."""
    max_batch_bytes: Positive = 1_000_000
    flush_interval_s: float = 1.0

    def check(self, key: str) -> None:
        if not self.enabled:
            return
        if not self.endpoint.startswith(("http://", "https://")):
            raise ValueError(f"{key}.endpoint: expected an http(s) URL, got {self.endpoint!r}")
        if self.api_key and not self.allow_insecure and _cleartext_off_host(self.endpoint):
            raise ValueError(
                f"{key}.endpoint: an http:// endpoint off this host would carry {key}.api_key in clear; "
                f"use https://, or set {key}.allow_insecure = true"
            )

    @classmethod
    def from_seed(cls, seed: SeedSettings) -> Self:
        """On with a SIEMAuditDestination, in the generic format (`enable_siem_logging` alone has no
        endpoint, which the seed's settings refuse)."""
        siem = cls(enabled=seed.enable_siem_logging)
        if (destination := seed.siem_destination) is not None:
            siem.enabled = True
            siem.destination_kind = "generic"
            siem.endpoint = destination.endpoint
            siem.api_key = destination.api_key
            siem.batch_size = destination.batch_size
        return siem


def _cleartext_off_host(url: str) -> bool:
    """http:// to anything but this host's loopback (traffic that never leaves the host)."""
    parsed = urlsplit(url)
    if parsed.scheme != "http":
        return False
    host = parsed.hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a name: it may resolve anywhere
