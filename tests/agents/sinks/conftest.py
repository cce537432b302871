import pytest

from agents.config import FileSinkConfig
from agents.crypto import Keyring
from agents.sinks.file import FileSink


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
