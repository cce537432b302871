"""What an auditor asks of the trail under one framework (SOX, HIPAA, GDPR, PCI DSS), over the lake.

Covered events: every event when the agent's `compliance` names the framework, else the events whose
`compliance` tags name it (a service's `AuditContext.compliance_requirements`, any case).

  access     access to covered resources by user: data reads, accesses, creations, updates, deletions,
             exports, privacy accesses and transactions, by user and resource type
  failed     failed access by user, address and type: auth_failure, access_denied, a failed login,
             permission check or data operation, an API call answered 401 or 403
  changes    privilege and configuration changes, one row each: configuration_change events and the
             actions the detector's privilege_then_access rule takes for privilege changes
  incomplete (frameworks with required fields: PCI) events the intake flagged for lacking a field
             PCI DSS 10.2.2 requires (`details.compliance_missing`), by service and fields
  retention  the framework's floor against the config's retention.days, the oldest event the lake
             holds, and the legal holds in place
  integrity  `audit-query verify` of the data directory's digests over the same range, summarised

Access, failed access and changes cover [start, end); retention looks at the whole lake.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

from auditship.agents import holds as legal_holds
from auditship.agents.config import AgentConfig
from auditship.agents.holds import HoldsError
from auditship.agents.retention import Location
from auditship.query.errors import QueryError
from auditship.query.filters import EventFilter
from auditship.query.lake import LakeReader
from auditship.query.verify.run import verify
from shipper.compliance import FRAMEWORKS, Framework
from shipper.event import AuditEventType as T

ACCESS_TYPES = tuple(
    t.value
    for t in (
        T.DATA_READ,
        T.DATA_ACCESS,
        T.DATA_CREATE,
        T.DATA_UPDATE,
        T.DATA_DELETE,
        T.DATA_EXPORT,
        T.PRIVACY_ACCESS,
        T.TRANSACTION,
    )
)


def _in(values: tuple[str, ...]) -> str:
    """Event types as SQL literals: fixed enum values, never input."""
    return ", ".join(f"'{value}'" for value in values)


FAILED_SQL = (
    "(event_type IN ('auth_failure', 'access_denied') OR status_code IN (401, 403)"
    f" OR (outcome = 'failure' AND event_type IN ('user_login', 'permission_check', {_in(ACCESS_TYPES)})))"
)
DEFAULT_LIMIT = 1000


class Section(TypedDict):
    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str


class ComplianceReport(TypedDict):
    framework: str
    start: str | None
    end: str | None
    generated: str
    scope: str
    sections: list[Section]


def compliance_report(
    where: Location,
    config: AgentConfig,
    framework: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    limit: int = DEFAULT_LIMIT,
    now: datetime | None = None,
) -> ComplianceReport:
    """The report for `framework` (sox, hipaa, gdpr or pci) over [start, end); QueryError for an unknown
    framework, a missing or empty lake."""
    chosen = FRAMEWORKS.get(framework.lower())
    if chosen is None:
        raise QueryError(f"--framework: {framework!r} is not one of {', '.join(FRAMEWORKS)}")
    everything = chosen.name in {name.lower() for name in config.compliance}
    scope_sql, scope_params = ("true", []) if everything else _tagged(chosen.name)
    condition, params = EventFilter(start=start, end=end).where()
    condition, params = f"{condition} AND {scope_sql}", [*params, *scope_params]
    changes = config.detect.privilege_then_access
    actions = sorted({action.lower() for action in changes.actions})
    privilege = f"lower(action) IN ({', '.join('?' * len(actions))})" if actions else "false"
    with LakeReader(where.lake, EventFilter(start=start, end=end).prune().keeps) as reader:

        def section(name: str, title: str, sql: str, extra: list[Any], note: str = "") -> Section:
            cursor = reader.execute(sql.format(where=condition), [*params, *extra, limit + 1])
            columns = [column[0] for column in cursor.description or ()]
            rows = [list(row) for row in cursor.fetchall()]
            if len(rows) > limit:
                rows = rows[:limit]
                note = f"{note}; " if note else ""
                note += f"the first {limit} rows only (--limit)"
            return Section(name=name, title=title, columns=columns, rows=rows, note=note)

        sections = [
            section(
                "access",
                "Access to covered resources by user",
                f"""SELECT coalesce(user_id, '') AS user_id, coalesce(resource_type, '') AS resource_type,
                       count(*) AS events, count(DISTINCT resource_id) AS resources,
                       count(*) FILTER (WHERE outcome <> 'success') AS not_succeeded,
                       min(timestamp) AS first, max(timestamp) AS last
                FROM events WHERE {{where}} AND event_type IN ({_in(ACCESS_TYPES)})
                GROUP BY ALL ORDER BY events DESC, user_id, resource_type LIMIT ?""",  # noqa: S608 - fixed values
                [],
            ),
            section(
                "failed",
                "Failed access",
                f"""SELECT coalesce(user_id, '') AS user_id, coalesce(source_ip, '') AS source_ip,
                       event_type, count(*) AS events, min(timestamp) AS first, max(timestamp) AS last
                FROM events WHERE {{where}} AND {FAILED_SQL}
                GROUP BY ALL ORDER BY events DESC, user_id, source_ip, event_type LIMIT ?""",  # noqa: S608 - fixed values
                [],
            ),
            section(
                "changes",
                "Privilege and configuration changes",
                f"""SELECT timestamp, coalesce(user_id, '') AS user_id, event_type,
                       coalesce(action, '') AS action, coalesce(resource_type, '') AS resource_type,
                       coalesce(resource_id, '') AS resource_id, outcome, event_id
                FROM events WHERE {{where}} AND (event_type = 'configuration_change' OR {privilege})
                ORDER BY timestamp, event_id LIMIT ?""",  # noqa: S608 - placeholders only
                actions,
            ),
        ]
        if chosen.required:
            sections.append(
                section(
                    "incomplete",
                    f"Events lacking fields {chosen.name.upper()} requires ({', '.join(chosen.required)})",
                    """SELECT coalesce(service_name, '') AS service_name,
                           json_extract_string(details, '$.compliance_missing') AS missing, count(*) AS events
                    FROM events WHERE {where} AND json_exists(details, '$.compliance_missing')
                    GROUP BY ALL ORDER BY events DESC, service_name, missing LIMIT ?""",
                    [],
                    "stored and flagged by the intake",
                )
            )
    oldest = _oldest(where.lake)
    moment = now or datetime.now(UTC)
    sections.append(_retention(where, config, chosen, oldest, moment))
    sections.append(_integrity(where, config, start, end))
    return ComplianceReport(
        framework=chosen.name,
        start=start.isoformat() if start else None,
        end=end.isoformat() if end else None,
        generated=moment.isoformat(timespec="seconds"),
        scope="every event (the agent's compliance names it)"
        if everything
        else f"events tagged {chosen.name.upper()}",
        sections=sections,
    )


def _tagged(name: str) -> tuple[str, list[Any]]:
    # Lower case without a lambda, whose syntax changed across the DuckDB versions supported: the tags
    # joined by a separator no tag holds (U+001F), lowered, split again.
    tags = "string_split(lower(array_to_string(compliance, chr(31))), chr(31))"
    return f"list_contains({tags}, ?)", [name]


def _oldest(lake: Path) -> datetime | None:
    """The oldest event's time, whatever the report's range: read from the oldest date= partition only."""
    days = sorted(path.name for path in lake.glob("date=*"))
    if not days:
        return None
    with LakeReader(lake, lambda part: days[0] in part.parts) as reader:
        row = reader.execute("SELECT min(timestamp) FROM events").fetchone()
    found = row[0] if row is not None else None
    return found if isinstance(found, datetime) else None


def _retention(
    where: Location, config: AgentConfig, chosen: Framework, oldest: datetime | None, now: datetime
) -> Section:
    configured = config.retention.days
    if chosen.floor_days == 0:
        status = f"no floor: {chosen.note}"
    elif configured >= chosen.floor_days:
        status = "ok: retention.days reaches the floor"
    else:
        status = f"BELOW FLOOR: retention.days is {configured}, the floor {chosen.floor_days}"
    try:
        held = legal_holds.names(legal_holds.load(where.data.holds)) if where.data is not None else ""
    except HoldsError as exc:
        held = f"unreadable: {exc}"
    row = [
        chosen.name,
        chosen.floor_days,
        chosen.searchable_days,
        configured,
        config.retention.auto_cleanup,
        oldest,
        (now - oldest).days if oldest is not None else None,
        held,
        status,
    ]
    columns = [
        "framework",
        "floor_days",
        "searchable_days",
        "retention_days",
        "auto_cleanup",
        "oldest_event",
        "oldest_age_days",
        "legal_holds",
        "status",
    ]
    note = "the lake is the searchable store: what it holds is immediately searchable"
    return Section(name="retention", title="Retention", columns=columns, rows=[row], note=note)


def _integrity(where: Location, config: AgentConfig, start: datetime | None, end: datetime | None) -> Section:
    columns = ["verified", "sinks", "digests", "objects", "verdicts", "removed_on_purpose", "notes"]
    if where.data is None or where.keys is None:
        row: list[Any] = [None, "", 0, 0, {}, 0, "not checked: only the lake is known (--lake)"]
        return Section(name="integrity", title="Integrity", columns=columns, rows=[row], note="")
    try:
        report = verify(where.data.root, where.keys, config=config, since=start, until=end)
    except QueryError as exc:
        row = [None, "", 0, 0, {}, 0, f"not checked: {exc}"]
        return Section(name="integrity", title="Integrity", columns=columns, rows=[row], note="")
    summary = report.summary
    row = [
        report.ok,
        ", ".join(summary.sinks),
        summary.digests,
        summary.objects,
        summary.verdicts,
        summary.removed,
        "; ".join(summary.notes),
    ]
    note = "" if report.ok else "run audit-query verify for the verdict of each object"
    return Section(name="integrity", title="Integrity", columns=columns, rows=[row], note=note)
