"""The SIEM sink over HTTPS: the collector's certificate is verified unless the config says not to."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from auditship.agents.sinks.base import Delivery
from auditship.agents.sinks.siem.sink import SiemSink
from tests.agents.sinks.entries import entries
from tests.certs import self_signed
from tests.siem_server import FakeSiem, ServedSiem

OpenSink = Callable[..., SiemSink]


@pytest.fixture
def https_siem(tmp_path: Path) -> Iterator[ServedSiem]:
    served = ServedSiem(FakeSiem(), tls=self_signed(tmp_path)).start()
    yield served
    served.stop()


def test_a_self_signed_certificate_is_not_trusted_by_default_and_the_batch_waits(
    https_siem: ServedSiem, open_siem_sink: OpenSink
) -> None:
    assert https_siem.url.startswith("https://")
    assert open_siem_sink(endpoint=https_siem.url).write_batch(entries(range(3))) is Delivery.ERRORED
    assert https_siem.siem.hec_events == []


def test_ca_file_makes_the_certificate_trusted(
    https_siem: ServedSiem, open_siem_sink: OpenSink, tmp_path: Path
) -> None:
    sink = open_siem_sink(endpoint=https_siem.url, ca_file=str(tmp_path / "cert.pem"))
    assert sink.write_batch(entries(range(3))) is Delivery.DELIVERED
    assert len(https_siem.siem.hec_events) == 3


def test_verify_tls_false_is_an_explicit_opt_out(https_siem: ServedSiem, open_siem_sink: OpenSink) -> None:
    sink = open_siem_sink(endpoint=https_siem.url, verify_tls=False)
    assert sink.write_batch(entries(range(3))) is Delivery.DELIVERED
