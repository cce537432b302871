"""The SIEM sink, split by role as Vector splits its larger sinks:

    sink.py           the sink: a batch -> requests of at most batch_size events and max_batch_bytes,
                      what is settled kept across retries, Retry-After handed to the runner
    classify.py       what an answer means: DELIVERED, ERRORED (retried), REJECTED (dead letters)
    splunk_hec.py     Splunk HEC, with indexer acknowledgement as an option
    elasticsearch.py  Elasticsearch/OpenSearch `_bulk`, per-item results
    generic.py        a JSON array POSTed with an API key header
    payload.py        each event as auditship writes it, or as OCSF (ocsf.py)

Only the SIEM's worker imports this package (and so httpx).
"""

from __future__ import annotations

from auditship.agents.config import AgentConfig, SiemSinkConfig
from auditship.agents.sinks.siem.elasticsearch import Elasticsearch
from auditship.agents.sinks.siem.generic import Generic
from auditship.agents.sinks.siem.payload import payload_encoder
from auditship.agents.sinks.siem.sink import Destination, SiemSink
from auditship.agents.sinks.siem.splunk_hec import SplunkHec


def destination(config: SiemSinkConfig) -> Destination:
    payload = payload_encoder(config.payload)
    match config.destination_kind:
        case "splunk_hec":
            return SplunkHec(config, payload)
        case "elasticsearch":
            return Elasticsearch(config, payload)
        case _:
            return Generic(config, payload)


REQUESTS_PER_COMMIT = 20
"""The runner's batch (one read of the WAL, one cursor commit) holds up to this many requests of
`batch_size` events. A commit costs two fsyncs, about as much as twenty small requests: committing after
each request would cap the sink near `batch_size` events per fsync pair. An event still waits at most
`flush_interval_s` for its batch."""


def build(config: AgentConfig) -> tuple[SiemSink, int, float]:
    settings = config.sinks.siem
    sink = SiemSink(settings, destination(settings))
    return sink, settings.batch_size * REQUESTS_PER_COMMIT, settings.flush_interval_s
