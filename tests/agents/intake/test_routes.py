"""Routes: which connections hear an emitter's confirmations."""

from __future__ import annotations

from auditship.agents.intake.routes import Routes


def test_a_route_is_found_only_under_its_senders_principal_and_emitter_id() -> None:
    routes = Routes()
    routes.add(b"victim", 1001, "e1")
    routes.add(b"attacker", 1002, "e1")
    assert routes.of(1001, "e1") == [b"victim"]
    assert routes.of(1002, "e1") == [b"attacker"]
    assert routes.of(1001, "e2") == []


def test_a_connection_that_says_hello_again_under_another_id_moves_there() -> None:
    routes = Routes()
    routes.add(b"r", 1001, "e1")
    routes.add(b"r", 1001, "e2")
    assert (routes.of(1001, "e1"), routes.of(1001, "e2"), len(routes)) == ([], [b"r"], 1)


def test_past_the_limit_the_route_that_said_hello_longest_ago_is_forgotten() -> None:
    routes = Routes(limit=2)
    routes.add(b"a", 1, "e")
    routes.add(b"b", 1, "e")
    routes.add(b"a", 1, "e")  # said hello again: now the newest
    routes.add(b"c", 1, "e")
    assert sorted(routes.of(1, "e")) == [b"a", b"c"]
    routes.remove(b"a")
    routes.remove(b"missing")
    assert (routes.of(1, "e"), len(routes)) == ([b"c"], 1)
