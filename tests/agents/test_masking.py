"""What the agent prints keeps no secret: URL passwords and secret-named parameters are masked."""

from __future__ import annotations

import httpx

from auditship.agents.masking import url_without_secrets
from auditship.agents.sinks.siem.classify import describe


def test_a_urls_password_and_secret_parameters_are_masked() -> None:
    assert url_without_secrets("https://user:hunter2@siem.example.com/_bulk?token=abc&x=1") == (
        "https://user:***@siem.example.com/_bulk?token=***&x=1"
    )
    assert (
        url_without_secrets("postgresql+psycopg://audit:s3cr3t@db/audit")
        == "postgresql+psycopg://audit:***@db/audit"
    )
    assert url_without_secrets("https://siem.example.com/ingest") == "https://siem.example.com/ingest"


def test_a_siem_answer_kept_in_a_dead_letter_names_the_url_without_its_password() -> None:
    """The reason a dead letter and the log keep for a refused request."""
    request = httpx.Request("POST", "https://user:hunter2@siem.example.com/ingest?api_key=k1")
    reason = describe(httpx.Response(401, text="denied", request=request))
    assert "hunter2" not in reason and "k1" not in reason
    assert reason.startswith("HTTP 401 from https://user:***@siem.example.com/ingest?api_key=***")
