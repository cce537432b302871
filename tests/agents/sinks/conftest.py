from collections.abc import Callable, Iterator

import pytest

from auditship.agents.crypto import Keyring
from auditship.agents.sinks.file.config import FileSinkConfig
from auditship.agents.sinks.file.sink import FileSink
from auditship.agents.sinks.siem.config import SiemSinkConfig
from auditship.agents.sinks.siem.sink import SiemSink, destination
from tests.agents.sinks.entries import WAL_ID
from tests.siem_server import API_KEY, TOKEN, FakeSiem, ServedSiem


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def keyring(data_dir):
    return Keyring.load_or_create(data_dir / "keys")


@pytest.fixture
def open_sink(data_dir, keyring):
    """open_sink(**config) -> an opened FileSink over `data_dir`; closed at the end of the test."""
    sinks: list[FileSink] = []

    def make(**config: object) -> FileSink:
        sink = FileSink(FileSinkConfig(**config), data_dir, keyring)
        sink.open()
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.close()


@pytest.fixture
def siem() -> Iterator[ServedSiem]:
    """A fake SIEM (HEC, _bulk, generic) listening on 127.0.0.1 for the test."""
    served = ServedSiem(FakeSiem()).start()
    yield served
    served.stop()


@pytest.fixture
def open_siem_sink(siem: ServedSiem) -> Iterator[Callable[..., SiemSink]]:
    """open_siem_sink(destination_kind, wal_id, **config) -> an opened SIEM sink, aimed at the `siem`
    fixture's server unless `endpoint` says otherwise, sending records of the WAL `wal_id` (WAL_ID)."""
    sinks: list[SiemSink] = []

    def make(destination_kind: str = "splunk_hec", wal_id: str = WAL_ID, **config: object) -> SiemSink:
        defaults = {
            "endpoint": siem.url + ("/ingest" if destination_kind == "generic" else ""),
            "api_key": TOKEN if destination_kind == "splunk_hec" else API_KEY,
        }
        settings = SiemSinkConfig(enabled=True, destination_kind=destination_kind, **(defaults | config))  # type: ignore[arg-type]
        sink = SiemSink(settings, destination(settings, wal_id), wal_id)
        sink.open()
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.close()
