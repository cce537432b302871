"""`audit-query report --framework sox|hipaa|gdpr|pci`: what an auditor asks for, over the lake.

Sections (query/compliance_report.py says what each counts):
  access      access to covered resources by user and resource type
  failed      failed access by user, address and type
  changes     privilege and configuration changes, one row each
  incomplete  (pci) events stored and flagged for lacking a field PCI DSS 10.2.2 requires
  retention   the framework's floor against retention.days, the oldest event held, the legal holds
  integrity   audit-query verify over the same range, summarised

Covered events are every event when the agent's `compliance` (--config) names the framework, else those
whose compliance tags name it. --format table (the default on a terminal), markdown (a document to hand
over), json (one object: the Python API's `AuditLogger.compliance_report()`), or csv (a block per
section, each with its header, separated by a blank line). Exit status 1 when integrity is not verified.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from auditship.query import location, output
from auditship.query.compliance_report import DEFAULT_LIMIT, ComplianceReport, compliance_report
from auditship.query.timespec import time_range
from shipper.compliance import FRAMEWORKS

FORMATS = ("table", "markdown", "json", "csv")


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "report",
        parents=[common],
        help="a compliance report (sox, hipaa, gdpr, pci): access, failures, changes, retention, integrity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--framework", required=True, type=str.lower, choices=tuple(FRAMEWORKS))
    parser.add_argument("--since", required=True, metavar="TIME", help="ISO 8601 or an age (90d)")
    parser.add_argument("--until", metavar="TIME", help="before this time: ISO 8601 or an age")
    parser.add_argument(
        "--format", dest="report_format", choices=FORMATS, help="default: table on a terminal, else json"
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"rows a section lists at most ({DEFAULT_LIMIT})",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    start, end = time_range(args.since, args.until)
    config = location.agent_config(args)
    found = compliance_report(
        location.resolve(args), config, args.framework, start, end, limit=max(1, args.limit)
    )
    chosen = args.report_format or output.chosen(None)
    write_report(found, chosen, sys.stdout)
    integrity = next(section for section in found["sections"] if section["name"] == "integrity")
    return 1 if integrity["rows"][0][0] is False else 0


def write_report(report: ComplianceReport, report_format: str, out: TextIO) -> None:
    if report_format == "json":
        output.write_json(report_json(report), out)
        return
    span = f"{report['start'] or 'the beginning'} to {report['end'] or report['generated']}"
    heading = f"{report['framework'].upper()} compliance report, {span}: {report['scope']}"
    if report_format == "markdown":
        out.write(f"# {heading}\n\nGenerated {report['generated']}.\n")
    elif report_format == "table":
        out.write(f"{heading}\n")
    for index, section in enumerate(report["sections"]):
        if report_format == "csv":
            if index:
                out.write("\n")
            rows = [[section["name"], *row] for row in section["rows"]]
            output.write_rows(["section", *section["columns"]], rows, "csv", out)
            continue
        note = f" ({section['note']})" if section["note"] else ""
        if report_format == "markdown":
            out.write(f"\n## {section['title']}\n\n")
            if note:
                out.write(f"{note.strip(' ()')}.\n\n")
            output.write_markdown(section["columns"], section["rows"], out)
        else:
            out.write(f"\n== {section['title']}{note}\n")
            output.write_table(
                section["columns"], [[output.text(v) for v in row] for row in section["rows"]], out
            )


def report_json(report: ComplianceReport) -> dict[str, Any]:
    """The report as `--format json` prints it: each section's rows as maps of its columns."""
    plain: dict[str, Any] = dict(report)
    plain["sections"] = [
        {**section, "rows": [dict(zip(section["columns"], row, strict=True)) for row in section["rows"]]}
        for section in report["sections"]
    ]
    return plain
