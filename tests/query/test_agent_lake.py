"""End to end: events emitted to a real agent reach the lake, and audit-query finds them by every filter
and counts them exactly.

How soon (the issue's target: within the sink's flush interval and a second) is a speed, so it is
measured by `python -m bench query`, not asserted here: under a loaded CI machine a timed assertion
fails for reasons that are not bugs. The wait below is only a bound on a hang."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from auditship.agents.sinks.parquet.config import ParquetSinkConfig
from auditship.query.errors import QueryError
from auditship.query.filters import EventFilter
from auditship.query.search import search
from auditship.query.stats import statistics
from shipper.emitter import Emitter
from tests.agentproc import QUICK_CONFIG, AgentDirs, RunningAgent
from tests.query.conftest import known_events
from tests.query.test_search import FILTERS
from tests.query.test_stats import expected
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

FLUSH_INTERVAL_S = 1.0  # shorter than the default, so the test waits less
CONFIG = f"""{QUICK_CONFIG}
[sinks.parquet]
enabled = true
flush_interval_s = {FLUSH_INTERVAL_S}
"""


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningAgent]:
    if not ParquetSinkConfig().enabled:
        pytest.skip("the Parquet sink has not landed yet: sinks.parquet.enabled is still off by default")
    dirs = AgentDirs()
    for key, value in dirs.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AUDITSHIP_ENDPOINT", raising=False)
    running = RunningAgent(dirs, CONFIG).start()
    yield running
    running.stop()
    dirs.cleanup()


def all_found(lake, count: int) -> bool:
    try:
        return len(search(lake, EventFilter(), limit=None)) == count
    except QueryError:  # no part yet
        return False


def test_emitted_events_are_found_by_every_filter_and_counted(agent, cli):
    """Emit the known set: all of it becomes searchable, every filter finds exactly its events, and the
    statistics are exact."""
    lake = agent.dirs.data / "lake"
    emitter = Emitter()
    for _, event in known_events():
        emitter.emit(event)
    emitter.flush(timeout=10)  # sent, or (emitted before the socket was connected) spooled for the agent
    wait_for(lambda: all_found(lake, len(known_events())), 30, "every event in the lake")
    emitter.close(timeout=5)

    for args, seqs in FILTERS:
        result = cli("search", "--lake", lake, *args)
        # The agent numbers the WAL itself; the known events' ids carry the seqs of the table.
        assert [int(json.loads(line)["event_id"], 16) for line in result.out.splitlines()] == seqs, args
    stats = statistics(lake)
    assert {key: value for key, value in stats.items() if key not in ("start", "end")} == expected()
