"""Flapping detection, fed timestamps: no processes needed."""

from auditship.agents.supervisor.flapping import FlapDetector


def test_exits_spread_wider_than_the_window_never_flap() -> None:
    """One exit a minute, with a 60 s window and a limit of 3, is a worker worth restarting forever."""
    detector = FlapDetector(max_exits=3, window_s=60)
    assert not any(detector.record_exit(at) for at in (0, 61, 122, 183, 244))


def test_the_nth_exit_within_the_window_flaps() -> None:
    """Three exits within 60 s: the third one says give up."""
    detector = FlapDetector(max_exits=3, window_s=60)
    assert not detector.record_exit(0)
    assert not detector.record_exit(10)
    assert detector.record_exit(20)
