"""Credentials in logged headers and metadata: redacted by name pattern, URLs without their query."""

from __future__ import annotations

import pytest

from shipper.middleware.config import ALWAYS_REDACTED
from shipper.middleware.redaction import grpc_metadata, http_headers

CREDENTIAL_HEADERS = (
    "X-Api-Key",
    "X-Auth-Token",
    "X-Amz-Security-Token",
    "X-CSRF-Token",
    "X-XSRF-TOKEN",
    "X-Token",
    "X-Session-Id",
    "X-Client-Secret",
    "X-Goog-Api-Key",
    "X-Hub-Signature-256",
    "X-Password",
)


@pytest.mark.parametrize("name", CREDENTIAL_HEADERS)
def test_credential_like_header_names_are_redacted_without_being_configured(name: str) -> None:
    logged = http_headers([(name.lower().encode(), b"s3cr3t"), (b"x-note", b"kept")], ALWAYS_REDACTED)
    assert logged == {name.lower(): "[REDACTED]", "x-note": "kept"}


def test_urls_in_referer_and_location_lose_their_query_and_fragment() -> None:
    raw = [
        (b"referer", b"https://shop.example/pay?token=abc123&step=2"),
        (b"location", b"/login/callback#access_token=xyz"),
        (b"content-location", b"/files/7"),
        (b"x-forwarded-host", b"shop.example?not-a-url"),
    ]
    assert http_headers(raw, ALWAYS_REDACTED) == {
        "referer": "https://shop.example/pay?[REDACTED]",
        "location": "/login/callback?[REDACTED]",
        "content-location": "/files/7",
        "x-forwarded-host": "shop.example?not-a-url",
    }


def test_grpc_metadata_follows_the_same_rules() -> None:
    metadata = [("x-auth-token", "t0k3n"), ("referer", "https://a.example/?code=9"), ("x-user-id", "alice")]
    assert grpc_metadata(metadata, ALWAYS_REDACTED) == {
        "x-auth-token": "[REDACTED]",
        "referer": "https://a.example/?[REDACTED]",
        "x-user-id": "alice",
    }
