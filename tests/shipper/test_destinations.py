"""The seed's destination objects configure the embedded agent's sinks, and refuse bad values where they
are written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from auditship.agents.config import parse_config
from auditship.agents.embedded import agent_config
from shipper import DatabaseAuditDestination, FileAuditDestination, SIEMAuditDestination
from shipper.config import AuditConfig
from shipper.emitter import Emitter
from tests.agentproc import AgentDirs, RunningAgent
from tests.databases import database
from tests.producers import numbered_event
from tests.waiting import wait_for

POSTGRES_URL = "postgresql+psycopg://auditor:s3cret@db.example:5432/audit"


def sinks_for(*destinations: object, **settings: Any) -> Any:
    return agent_config(AuditConfig(destinations=list(destinations), **settings)).sinks


def test_the_seeds_file_destination_configures_the_file_sink(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The seed's example, with a relative path taken from the service's working directory."""
    monkeypatch.chdir(tmp_path)
    destination = FileAuditDestination(
        log_file_path=Path("audit.log"), max_file_size=1024 * 1024, max_files=3, encrypt_sensitive=False
    )
    file = sinks_for(destination, enable_file_logging=False).file
    assert file.enabled is True
    assert file.path == str(tmp_path / "audit.log")
    assert (file.max_file_size, file.max_files, file.encrypt_sensitive) == (1024 * 1024, 3, False)


def test_a_database_destination_takes_the_url_of_its_sessions_engine_password_included() -> None:
    """str() of a SQLAlchemy URL hides the password as ***; the agent needs the real one to log in."""
    engine = create_engine(POSTGRES_URL)
    for bound in (Session(engine), engine):
        sql = sinks_for(DatabaseAuditDestination(db_session=bound, batch_size=250)).sql
        assert (sql.enabled, sql.url, sql.batch_size) == (True, POSTGRES_URL, 250)
    engine.dispose()


def test_a_database_destination_reads_the_url_of_a_connection(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.connect() as connection:
        assert DatabaseAuditDestination(db_session=connection).url == f"sqlite:///{tmp_path / 'app.db'}"
    engine.dispose()


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql+asyncpg://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql+psycopg://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("mysql+aiomysql://u:p@h/db", "mysql+pymysql://u:p@h/db"),
        ("mariadb+asyncmy://u@h/db", "mariadb+pymysql://u@h/db"),
        ("sqlite+aiosqlite:////var/lib/app/audit.db", "sqlite:////var/lib/app/audit.db"),
    ],
)
def test_the_url_of_an_async_engine_gets_the_synchronous_driver_of_its_database(
    given: str, used: str
) -> None:
    """The seed passes an AsyncSession; the agent's sink is synchronous."""
    assert sinks_for(DatabaseAuditDestination(url=given)).sql.url == used


def test_the_seeds_siem_destination_configures_the_siem_sink_with_the_generic_format() -> None:
    siem = sinks_for(
        SIEMAuditDestination(siem_endpoint="https://siem.company.com/api/events", api_key="your-api-key")
    ).siem
    assert (siem.enabled, siem.destination_kind, siem.endpoint) == (
        True,
        "generic",
        "https://siem.company.com/api/events",
    )
    assert (siem.api_key, siem.batch_size) == ("your-api-key", 500)


def test_destinations_add_to_the_sinks_the_flags_turn_on() -> None:
    """As in the seed, where the flags add destinations: the file sink stays on beside the database."""
    sinks = sinks_for(DatabaseAuditDestination(url=POSTGRES_URL), enable_console_logging=True)
    assert [sinks.file.enabled, sinks.console.enabled, sinks.sql.enabled, sinks.siem.enabled] == [
        True,
        True,
        True,
        False,
    ]


def test_enable_database_logging_alone_is_sqlite_in_the_data_directory() -> None:
    sql = sinks_for(enable_database_logging=True, batch_size=500).sql
    assert (sql.enabled, sql.url, sql.batch_size) == (True, "", 500)


def test_enable_siem_logging_without_a_destination_says_what_is_missing() -> None:
    with pytest.raises(ValueError, match=r"enable_siem_logging: .*SIEMAuditDestination\(siem_endpoint="):
        sinks_for(enable_siem_logging=True)


def test_the_agent_reads_back_what_agent_config_writes(tmp_path: Path) -> None:
    """The embedded agent gets its config as TOML: every destination's settings survive the trip and
    pass the agent's own checks."""
    config = AuditConfig(
        data_dir=tmp_path,
        destinations=[
            FileAuditDestination(tmp_path / "audit.log", max_files=4),
            DatabaseAuditDestination(url=f"sqlite:///{tmp_path / 'audit.db'}", batch_size=300),
            SIEMAuditDestination("https://siem.example/api/events", "key", batch_size=20),
        ],
    )
    written = agent_config(config)
    assert parse_config(msgspec.toml.encode(written)) == written


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (
            lambda: FileAuditDestination(log_file_path=""),
            ValueError,
            "log_file_path: expected a path, got ''",
        ),
        (lambda: FileAuditDestination(log_file_path=7), TypeError, "log_file_path: expected a path, got 7"),
        (
            lambda: FileAuditDestination("a.log", max_file_size=0),
            ValueError,
            "max_file_size: expected a positive",
        ),
        (
            lambda: FileAuditDestination("a.log", max_files=True),
            ValueError,
            "max_files: expected a positive int",
        ),
        (lambda: FileAuditDestination("a.log", encrypt_sensitive="yes"), TypeError, "expected True or False"),
        (DatabaseAuditDestination, ValueError, "either db_session or url, not both nor neither"),
        (
            lambda: DatabaseAuditDestination(db_session=create_engine("sqlite://"), url="sqlite://"),
            ValueError,
            "either db_session or url",
        ),
        (
            lambda: DatabaseAuditDestination(url="sqlite://", encrypt_sensitive=False),
            ValueError,
            "stores sensitive values only as ciphertext",
        ),
        (
            lambda: DatabaseAuditDestination(url="sqlite://", batch_size=-1),
            ValueError,
            "batch_size: expected",
        ),
        (
            lambda: DatabaseAuditDestination(url=b"sqlite://"),
            TypeError,
            "url: expected a SQLAlchemy URL string",
        ),
        (
            lambda: DatabaseAuditDestination(db_session=object()),
            TypeError,
            "db_session: expected a SQLAlchemy",
        ),
        (
            lambda: DatabaseAuditDestination(db_session=Session()),
            ValueError,
            "db_session is bound to no engine",
        ),
        (
            lambda: DatabaseAuditDestination(url="oracle://scott:tiger@db/orcl"),
            ValueError,
            "got one for 'oracle'",
        ),
        (lambda: DatabaseAuditDestination(url="scott:tiger@db"), ValueError, "got no scheme://"),
        (
            lambda: SIEMAuditDestination("ftp://siem", "key"),
            ValueError,
            "siem_endpoint: expected an http(s) URL",
        ),
        (
            lambda: SIEMAuditDestination("https://siem", ""),
            ValueError,
            "api_key: expected a non-empty string",
        ),
        (
            lambda: SIEMAuditDestination("https://siem", "key", batch_size=0),
            ValueError,
            "batch_size: expected",
        ),
    ],
)
def test_a_bad_value_is_refused_where_it_is_written_with_the_class_and_argument_named(
    build: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        build()
    assert str(raised.value).split(":")[0] in {
        "FileAuditDestination",
        "DatabaseAuditDestination",
        "SIEMAuditDestination",
    }
    assert message in str(raised.value)
    assert "tiger" not in str(raised.value)


def test_secrets_stay_out_of_a_destinations_repr() -> None:
    database = DatabaseAuditDestination(url=POSTGRES_URL)
    siem = SIEMAuditDestination("https://siem.example", "api-key-123")
    assert "s3cret" not in repr(database)
    assert "api-key-123" not in repr(siem)


def test_destinations_the_agent_cannot_serve_are_refused_with_their_place_named() -> None:
    url = DatabaseAuditDestination(url=POSTGRES_URL)
    with pytest.raises(ValueError, match=r"destinations\[1\]: a second DatabaseAuditDestination"):
        sinks_for(url, url)
    with pytest.raises(TypeError, match=r"destinations\[0\]: expected a FileAuditDestination, .* got dict"):
        sinks_for({"type": "database"})


def test_importing_the_destinations_loads_neither_sqlalchemy_nor_the_agent() -> None:
    """A service with the plain install (msgspec and pyzmq) imports them from `shipper`."""
    probe = (
        "import sys, shipper; shipper.DatabaseAuditDestination; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'agents', 'zmq'}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_an_agent_configured_by_a_database_destination_fills_its_table(dirs: AgentDirs) -> None:
    """The whole way: destination -> agent_config -> the TOML an embedded agent is started with -> its
    SQL sink -> the table (the seed's default name, audit_events)."""
    with database("sqlite", dirs.root) as db:
        db.table = "audit_events"
        config = AuditConfig(
            enable_file_logging=False, destinations=[DatabaseAuditDestination(url=db.url, batch_size=50)]
        )
        agent = RunningAgent(dirs, msgspec.toml.encode(agent_config(config)).decode()).start()
        emitter = Emitter()
        try:
            ids = []
            for number in range(500):
                event = numbered_event("embedded", number)
                ids.append(event.event_id)
                emitter.emit(event)
            assert emitter.flush(30), emitter.stats
            wait_for(lambda: agent.counters("sink:sql").get("delivered", 0) >= 500, 30, "500 delivered")
        finally:
            emitter.close()
            agent.stop()
        assert sorted(db.event_ids()) == sorted(ids)
