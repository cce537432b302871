"""The in-process signals: traversal and injection shapes in a request, bursts of authentication failures."""

from __future__ import annotations

import pytest

from shipper.middleware.anomalies import SCAN_LIMIT, AuthFailureBursts, scan_request


@pytest.mark.parametrize(
    ("path", "raw_path", "query", "evidence"),
    [
        ("/files/../../etc/passwd", b"/files/../../etc/passwd", b"", "/../"),
        ("/files/../x", b"/files/%2e%2e/x", b"", "/../"),
        ("/files/a", b"/files/a", b"name=..%2f..%2fsecret", "..%2f"),
        ("/files/a", b"/files/a", b"name=../../secret", "=../"),
        ("/files/a", b"/files/a", b"f=%252e%252e%252f", "%252e"),
        ("/files/a.txt", b"/files/a.txt%00.png", b"", "%00"),
        ("/download", b"/download", b"file=/etc/passwd", "/etc/passwd"),
        ("/..\\windows\\win.ini", b"/..\\windows\\win.ini", b"", "/..\\"),
    ],
)
def test_traversal_shapes_are_found(path: str, raw_path: bytes, query: bytes, evidence: str) -> None:
    """Dot segments as sent, encoded once or twice, NUL bytes and well-known targets."""
    assert scan_request(path, raw_path, query) == ("path_traversal", evidence)


@pytest.mark.parametrize(
    ("path", "query", "evidence"),
    [
        ("/users/1' OR '1'='1", b"", "' OR '"),
        ("/users", b"id=1%27%20or%201%3D1", "' or 1"),
        ("/users", b"id=1+UNION+ALL+SELECT+password+FROM+users", "UNION ALL SELECT"),
        ("/users", b"id=1;+DROP+TABLE+users", "; DROP"),
        ("/users", b"name=admin'--", "'--"),
        ("/users", b"id=1+and+sleep(5)", "sleep("),
        ("/users", b"id=1;waitfor+delay+'0:0:5'", "waitfor delay"),
    ],
)
def test_sql_injection_shapes_are_found(path: str, query: bytes, evidence: str) -> None:
    """Tautologies after a quote, UNION SELECT, stacked statements, quote-then-comment, timing calls;
    in the decoded path or the decoded query."""
    assert scan_request(path, path.encode(), query) == ("sql_injection", evidence)


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/api/users/42", b""),
        ("/static/app.min.js", b""),
        ("/search", b"q=orange+juice&page=2"),
        ("/docs/v1.2/guide", b"lang=en-GB"),
        ("/names/O'Brien", b""),
        ("/selection", b"sort=-created&union=1"),
    ],
)
def test_ordinary_requests_are_not_flagged(path: str, query: bytes) -> None:
    """Dots in file names, apostrophes in names and words like "union" alone are not attacks."""
    assert scan_request(path, path.encode(), query) is None


def test_only_the_first_scan_limit_characters_are_scanned() -> None:
    """A huge URL costs no more than a long one: what lies past the limit is not looked at."""
    padded = "/a" + "b" * SCAN_LIMIT + "/../etc"
    assert scan_request(padded, padded.encode(), b"") is None


def test_a_burst_is_the_failure_that_makes_threshold_within_the_window() -> None:
    """Three failures within 60 s from one address: the third signals, and the count starts again."""
    bursts = AuthFailureBursts(threshold=3, window_s=60)
    assert [bursts.failure("10.0.0.1", t) for t in (0.0, 10.0, 20.0)] == [False, False, True]
    assert [bursts.failure("10.0.0.1", t) for t in (21.0, 22.0, 23.0)] == [False, False, True]


def test_failures_spread_wider_than_the_window_are_no_burst() -> None:
    """The window slides: each new failure is compared with the threshold-th last one."""
    bursts = AuthFailureBursts(threshold=3, window_s=60)
    assert [bursts.failure("10.0.0.1", t) for t in (0.0, 40.0, 80.0, 120.0)] == [False] * 4
    assert bursts.failure("10.0.0.1", 125.0)  # 80, 120, 125 within 60 s


def test_addresses_are_counted_apart() -> None:
    """Failures from other addresses do not add up."""
    bursts = AuthFailureBursts(threshold=2, window_s=60)
    assert not bursts.failure("10.0.0.1", 0.0)
    assert not bursts.failure("10.0.0.2", 1.0)
    assert bursts.failure("10.0.0.1", 2.0)


def test_memory_is_bounded_by_forgetting_the_least_recently_failing_addresses() -> None:
    """Past max_sources addresses the one that failed longest ago is dropped; a recent one is kept."""
    bursts = AuthFailureBursts(threshold=2, window_s=60, max_sources=100)
    bursts.failure("keep", 0.0)
    for n in range(1_000):
        bursts.failure(f"10.0.{n // 256}.{n % 256}", 1.0)
        if n == 950:
            bursts.failure("recent", 1.0)
    assert len(bursts) == 100
    assert bursts.failure("recent", 2.0)  # still tracked, so this is its second failure
    assert not bursts.failure("keep", 2.0)  # forgotten long ago: this is a first failure again
