"""audit-agent: run the agent, check a config file, ask a running agent for its status, rotate and list the
field keys, manage the keys of a TCP intake, export the public key that verifies the digests, forget a
data subject, place and lift legal holds, or run a demo."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from auditship.agents.config import AgentConfig, load_config
from auditship.agents.curve_keys import CurveKeys
from auditship.agents.embedded import load_seed
from auditship.agents.logs import configure_logging
from auditship.agents.masking import MASK, SECRET_KEY, url_without_secrets
from auditship.ondisk.errors import AuditshipError
from auditship.ondisk.keys import ACTIVE
from shipper import endpoint as endpoints
from shipper.control import Status, request_status

EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="audit-agent", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the agent in the foreground (what systemd starts)")
    settings = run.add_mutually_exclusive_group()
    settings.add_argument("--config", type=Path, help="TOML config file (default: built-in defaults)")
    # What a service's embedded agent is started with (shipper.embedded), not for people.
    settings.add_argument("--seed", type=Path, help=argparse.SUPPRESS)
    check = commands.add_parser("check-config", help="validate a config file and print it, secrets as ***")
    check.add_argument("file", type=Path)
    status = commands.add_parser("status", help="counters of a running agent's workers")
    status.add_argument("--config", type=Path)
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    demo = commands.add_parser("demo", help="run the agent with a demo emitter writing real events")
    demo.add_argument("--config", type=Path)
    demo.add_argument("--events", type=int, default=10_000)
    redeliver = commands.add_parser("redeliver", help="send a sink's dead letters again (config fixed)")
    redeliver.add_argument("sink", help="the sink whose dead letters to send, e.g. siem")
    redeliver.add_argument("--config", type=Path)
    redeliver.add_argument("--attempts", type=int, default=5, help="tries per batch before giving up")
    _keys_parser(commands)
    _subject_parser(commands)
    _hold_parser(commands)
    args = parser.parse_args(argv)
    try:
        code = _command(args)
        # Short output waits in stdout's buffer: a reader gone already shows only when it is flushed.
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (head, less) went away: not an error. Point stdout at /dev/null so that Python's
        # flush at exit does not fail on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code


def _command(args: argparse.Namespace) -> int:
    try:
        if getattr(args, "seed", None) is not None:
            config = load_seed(args.seed)
        else:
            config = load_config(args.config if args.command != "check-config" else args.file)
        return _dispatch(config, args)
    except AuditshipError as exc:
        print(f"audit-agent: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _dispatch(config: AgentConfig, args: argparse.Namespace) -> int:  # noqa: PLR0911 - a return per command
    match args.command:
        case "run":
            return _run(config)
        case "check-config":
            sys.stdout.write(msgspec.toml.encode(without_secrets(msgspec.to_builtins(config))).decode())
            return 0
        case "status":
            return _status(config, as_json=args.json)
        case "redeliver":
            from auditship.agents.redeliver import run_redeliver

            return run_redeliver(config, args.sink, args.attempts)
        case "keys":
            return _keys(config, args)
        case "subject":
            from auditship.agents.subjects.forget import run_forget

            return run_forget(config, args.subject)
        case "hold":
            return _hold(config, args)
        case _:
            from auditship.agents.demo import run_demo

            return run_demo(config, args.events)


def _keys_parser(commands: Any) -> None:
    keys = commands.add_parser(
        "keys",
        help="the field keys (rotate, list); the CURVE keys of a TCP intake (the agent's, the clients'); "
        "the digests' public key",
    )
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "--config", type=Path, help="the agent's config (where intake.curve_dir, keys_dir are)"
    )
    actions = keys.add_subparsers(dest="action", required=True)
    init = actions.add_parser("init", parents=[config], help="make the agent's key pair")
    init.add_argument("--force", action="store_true", help="replace an existing one (cuts off every client)")
    add = actions.add_parser("add", parents=[config], help="make a client key pair and allow it")
    add.add_argument("name", help="the client's name: its events' sender.user")
    allow = actions.add_parser("allow", parents=[config], help="allow a client key made elsewhere")
    allow.add_argument("name")
    allow.add_argument("public_key_file", type=Path, help="the client's public certificate")
    actions.add_parser(
        "list", parents=[config], help="the field keys, the agent's public key and the allowed clients"
    )
    actions.add_parser(
        "rotate",
        parents=[config],
        help="make a new active field key (a running agent takes it up within a second; old keys stay)",
    )
    revoke = actions.add_parser("revoke", parents=[config], help="remove a client from the allow-list")
    revoke.add_argument("name")
    export = actions.add_parser(
        "export-public",
        parents=[config],
        help="print the public key that verifies the digests (PEM) and its key id, for an auditor",
    )
    export.add_argument("--output", type=Path, metavar="FILE", help="write the PEM here instead of stdout")


def _subject_parser(commands: Any) -> None:
    subject = commands.add_parser("subject", help="data subjects (GDPR): forget one (crypto-shredding)")
    actions = subject.add_subparsers(dest="action", required=True)
    forget = actions.add_parser(
        "forget",
        help="destroy a data subject's keys: their sensitive values become unreadable, the events stay; "
        "recorded as a DATA_RETENTION event",
    )
    forget.add_argument("subject", metavar="USER", help="the subject, as [subjects] fields name it")
    forget.add_argument("--config", type=Path, help="the agent's config (keys_dir, spool_dir, [subjects])")


def _hold_parser(commands: Any) -> None:
    hold = commands.add_parser(
        "hold",
        help="legal holds: events a hold matches are kept from retention until it is removed",
        description="A hold matches events by every criterion it gives (user, resource type, resource id, "
        "period [since, until) in UTC); an event any hold matches is held. Retention keeps the lake "
        "partition, closed file or SQL rows that hold it, and reports them as kept.",
    )
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", type=Path, help="the agent's config (where data_dir is)")
    actions = hold.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", parents=[config], help="place a hold")
    add.add_argument("name", help="the hold's name, such as a matter or case number")
    add.add_argument("--user", dest="user_id", metavar="USER_ID", help="events by this user_id")
    add.add_argument("--resource-type", metavar="TYPE", help="events on resources of this type")
    add.add_argument("--resource-id", metavar="ID", help="events on this resource id")
    add.add_argument("--since", type=_moment, metavar="TIME", help="events from this time on (ISO 8601, UTC)")
    add.add_argument("--until", type=_moment, metavar="TIME", help="events before this time (ISO 8601, UTC)")
    add.add_argument("--reason", default="", help="why (a case, a request), kept with the hold")
    remove = actions.add_parser("remove", parents=[config], help="lift a hold")
    remove.add_argument("name")
    actions.add_parser("list", parents=[config], help="the holds in place")


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time (2025-01-31, 2025-01-31T12:00Z)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _hold(config: AgentConfig, args: argparse.Namespace) -> int:
    from auditship.agents import holds
    from auditship.ondisk.data_layout import DataLayout

    path = DataLayout(config.data_path).holds
    match args.action:
        case "add":
            hold = holds.add(
                path,
                args.name,
                reason=args.reason,
                user_id=args.user_id,
                resource_type=args.resource_type,
                resource_id=args.resource_id,
                since=args.since,
                until=args.until,
            )
            print(f"hold {hold.name} placed: {hold.criteria()}; retention keeps what holds these events")
        case "remove":
            hold = holds.remove(path, args.name)
            print(f"hold {hold.name} lifted ({hold.criteria()}); retention applies to those events again")
        case _:
            placed = holds.load(path)
            if not placed:
                print(f"no legal holds ({path})")
            for hold in placed:
                created = hold.created.isoformat(timespec="seconds")
                print(f"{hold.name}  {hold.criteria()}  placed {created}  {hold.reason}".rstrip())
    return 0


def _export_public(keys_dir: Path, output: Path | None) -> int:
    """The signing key's public half: all an auditor needs for `audit-query verify --public-key`."""
    from auditship.agents.integrity.signing import Signer

    signer = Signer.load(keys_dir)
    if output is None:
        # The PEM alone on stdout, so that `> FILE` is the key file; the id beside it on stderr.
        sys.stdout.write(signer.public_pem().decode())
        print(f"key id: {signer.key_id}", file=sys.stderr)
        return 0
    try:
        output.write_bytes(signer.public_pem())
    except OSError as exc:
        print(f"audit-agent: {output}: cannot write: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {output}; key id: {signer.key_id}")
    return 0


def _rotate(keys_dir: Path) -> int:
    from auditship.agents.crypto.keyring import Keyring

    keyring = Keyring.load(keys_dir)
    old = keyring.active_key_id
    new = keyring.rotate("audit-agent keys rotate")
    print(f"field key {new} is now active, replacing {old} (kept for decryption); a running agent uses it")
    print("within a second")
    return 0


def _list_field_keys(keys_dir: Path) -> None:
    from auditship.agents.crypto.key_list import field_keys

    if not (keys_dir / ACTIVE).exists():
        print(f"field keys: none in {keys_dir} yet (the agent makes the first at its first start)")
        return
    for key in field_keys(keys_dir):
        created = datetime.fromtimestamp(key.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        uses = "unreadable" if key.uses is None else str(key.uses)
        state = "active" if key.active else "retired"
        print(f"field {key.key_id}  created {created}  uses {uses}  {state}")


def _keys(config: AgentConfig, args: argparse.Namespace) -> int:
    if args.action == "export-public":
        return _export_public(config.keys_path, args.output)
    if args.action == "rotate":
        return _rotate(config.keys_path)
    keys = CurveKeys(config.curve_path)
    match args.action:
        case "init":
            print(f"agent public certificate: {keys.init(force=args.force)} (give it to every client)")
        case "add":
            secret = keys.add(args.name)
            print(f"client {args.name!r} allowed; its secret certificate (0600): {secret}")
            print(f"move it to the client host (AUDITSHIP_CURVE_CLIENT_CERT), with {keys.server_public}")
        case "allow":
            keys.allow(args.name, args.public_key_file)
            print(f"client {args.name!r} allowed")
        case "list":
            _list_field_keys(config.keys_path)
            server = keys.server_keys()[0].decode() if keys.server_secret.exists() else "none (keys init)"
            print(f"agent {server}  {keys.server_public}")
            for name, public in keys.allowed().items():
                print(f"client {public.decode()}  {name}")
        case _:
            if not keys.revoke(args.name):
                print(f"audit-agent: no client {args.name!r} in {keys.clients}", file=sys.stderr)
                return 1
            print(f"client {args.name!r} revoked (an open connection is dropped within a second)")
    return 0


def without_secrets(table: dict[str, Any]) -> dict[str, Any]:
    """The config as check-config prints it, to terminals and CI logs: the value of a secret-named key
    (`api_key`, `password`, `token`, `secret`) and the password of a URL (`sinks.sql.url`, one in
    `sinks.siem.endpoint`) become `***`. By name and shape, so that a key added later is covered too."""
    shown: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            shown[key] = without_secrets(value)
        elif isinstance(value, str) and value and SECRET_KEY.search(key):
            shown[key] = MASK
        elif isinstance(value, str) and "://" in value:
            shown[key] = url_without_secrets(value)
        else:
            shown[key] = value
    return shown


def _run(config: AgentConfig) -> int:
    from setproctitle import setproctitle

    from auditship.agents.supervisor.supervisor import Supervisor

    setproctitle("audit-agent: supervisor")
    configure_logging(config.log_level, "supervisor")
    return Supervisor(config).run()


class WorkerReport(msgspec.Struct, omit_defaults=True):
    """One worker as `audit-agent status` shows it."""

    name: str
    state: str
    pid: int | None
    restarts: int
    counters: dict[str, int | float]
    lag_events: int | None = None
    """Sinks only: events in the WAL the sink has not delivered yet (the intake's last_seq minus the
    sink's committed)."""
    problem: str | None = None
    """What keeps failing right now, with since when and what waits (a full disk under the WAL)."""


class StatusReport(msgspec.Struct):
    """What `audit-agent status` prints, as a table or (--json) as this object."""

    pid: int
    workers: list[WorkerReport]


def status_report(status: Status) -> StatusReport:
    last_seq = next((w.counters.get("last_seq", 0) for w in status.workers if w.name == "intake"), 0)
    return StatusReport(
        status.pid,
        [
            WorkerReport(
                w.name,
                w.state,
                w.pid,
                w.restarts,
                w.counters,
                max(0, int(last_seq) - int(w.counters["committed"])) if "committed" in w.counters else None,
                w.problem,
            )
            for w in status.workers
        ],
    )


def _status(config: AgentConfig, *, as_json: bool) -> int:
    status = request_status(config.runtime_path)
    if status is None:
        print(
            f"audit-agent: no agent answers on {endpoints.control_endpoint(config.runtime_path)}",
            file=sys.stderr,
        )
        return 1
    report = status_report(status)
    if as_json:
        print(msgspec.json.encode(report).decode())
        return 0
    print(f"audit-agent pid {report.pid}")
    for worker in report.workers:
        counters = dict(worker.counters)
        if worker.lag_events is not None:
            counters["lag_events"] = worker.lag_events
        shown = " ".join(f"{key}={value}" for key, value in sorted(counters.items()))
        print(f"  {worker.name:<14} {worker.state:<9} pid={worker.pid} restarts={worker.restarts} {shown}")
        if worker.problem:
            print(f"  {'':<14} ! {worker.problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
