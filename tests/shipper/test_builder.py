"""AuditEventBuilder builds the seed's custom events, stamped with the service and correlation ids."""

import pytest

from shipper.builder import AuditEventBuilder
from shipper.config import AuditContext
from shipper.correlation import correlation
from shipper.event import AuditEvent, AuditEventType, AuditOutcome, AuditSeverity

CONTEXT = AuditContext(
    service_name="payment-service",
    service_version="1.2.3",
    environment="production",
    node_id="us-west-2-node-01",
    compliance_requirements=["SOX", "PCI"],
)


def test_the_seeds_custom_event_has_every_field_it_was_given():
    """The seed's payment example sets each field where the event model names it."""
    builder = AuditEventBuilder(CONTEXT)
    event = (
        builder.event_type(AuditEventType.BUSINESS_LOGIC)
        .message("Payment processed successfully")
        .user("customer123")
        .action("process_payment")
        .severity(AuditSeverity.MEDIUM)
        .outcome(AuditOutcome.SUCCESS)
        .resource("payment", "pay-789")
        .performance(duration_ms=250.0)
        .detail("amount", 99.99)
        .detail("currency", "USD")
        .sensitive_detail("card_number", "****-****-****-1234")
        .build()
    )
    assert isinstance(event, AuditEvent)
    assert event.event_type is AuditEventType.BUSINESS_LOGIC
    assert event.message == "Payment processed successfully"
    assert event.user_id == "customer123"
    assert event.action == "process_payment"
    assert event.severity is AuditSeverity.MEDIUM
    assert event.outcome is AuditOutcome.SUCCESS
    assert (event.resource_type, event.resource_id) == ("payment", "pay-789")
    assert event.duration_ms == 250.0
    assert event.details == {"amount": 99.99, "currency": "USD"}
    # Sensitive values are kept apart from details, for the agent to encrypt.
    assert event.sensitive == {"card_number": "****-****-****-1234"}
    assert "card_number" not in event.details


def test_build_stamps_the_service_context_and_its_compliance_tags():
    """Every built event says which service, version, environment and node it came from."""
    event = AuditEventBuilder(CONTEXT).event_type(AuditEventType.TRANSACTION).build()
    assert event.service_name == "payment-service"
    assert event.service_version == "1.2.3"
    assert event.environment == "production"
    assert event.node_id == "us-west-2-node-01"
    assert event.compliance == ["SOX", "PCI"]


def test_the_seeds_structured_event_shape_builds():
    """The seed's best-practice chain (user and resource from variables) builds."""
    user_id, order_id = "u-1", "order-9"
    event = (
        AuditEventBuilder(CONTEXT)
        .event_type(AuditEventType.BUSINESS_LOGIC)
        .message("Order processed")
        .user(user_id)
        .resource("order", order_id)
        .build()
    )
    assert (event.user_id, event.resource_type, event.resource_id) == ("u-1", "order", "order-9")


def test_sensitive_detail_returns_the_builder_for_standalone_calls():
    """The seed calls builder.sensitive_detail(...) as a statement; the values all land in sensitive."""
    builder = AuditEventBuilder().event_type(AuditEventType.DATA_UPDATE)
    builder.sensitive_detail("ssn", "123-45-6789")
    builder.sensitive_detail("credit_card", "4111-1111-1111-1111")
    builder.sensitive_detail("payment_token", "tok_abc")
    assert builder.build().sensitive == {
        "ssn": "123-45-6789",
        "credit_card": "4111-1111-1111-1111",
        "payment_token": "tok_abc",
    }


def test_the_remaining_setters_fill_their_fields():
    """user with a session, source_ip, user_agent, changes and extra compliance tags are all kept."""
    event = (
        AuditEventBuilder(CONTEXT)
        .event_type(AuditEventType.DATA_UPDATE)
        .user("alice", session_id="sess-1")
        .source_ip("10.0.0.7")
        .user_agent("curl/8.0")
        .change("email", "new@example.com")
        .change("name", "Alice")
        .compliance("GDPR", "SOX")
        .build()
    )
    assert (event.user_id, event.session_id) == ("alice", "sess-1")
    assert event.source_ip == "10.0.0.7"
    assert event.user_agent == "curl/8.0"
    assert event.changes == {"email": "new@example.com", "name": "Alice"}
    # The context's tags come first; a tag given twice appears once.
    assert event.compliance == ["SOX", "PCI", "GDPR"]


def test_building_without_an_event_type_is_an_error_that_says_so():
    """An event with no type cannot be audited; build() refuses and names what is missing."""
    builder = AuditEventBuilder(CONTEXT).message("something happened")
    with pytest.raises(ValueError, match="event type is not set"):
        builder.build()


def test_a_value_that_is_not_an_event_type_is_refused_at_once():
    """A wrong event type fails in the service, where it can be fixed, not at the agent."""
    with pytest.raises(ValueError, match="not_a_type"):
        AuditEventBuilder().event_type("not_a_type")  # type: ignore[arg-type]


def test_enum_values_given_as_strings_become_members():
    """An untyped caller's "user_login" is stored as AuditEventType.USER_LOGIN."""
    event = (
        AuditEventBuilder()
        .event_type("user_login")  # type: ignore[arg-type]
        .severity("high")  # type: ignore[arg-type]
        .outcome("failure")  # type: ignore[arg-type]
        .build()
    )
    assert event.event_type is AuditEventType.USER_LOGIN
    assert event.severity is AuditSeverity.HIGH
    assert event.outcome is AuditOutcome.FAILURE


def test_each_build_is_a_separate_event():
    """Building twice gives two ids, and a later detail() does not reach the first event."""
    builder = AuditEventBuilder().event_type(AuditEventType.WORKFLOW).detail("step", 1)
    first = builder.build()
    builder.detail("step", 2)
    second = builder.build()
    assert first.event_id != second.event_id
    assert first.details == {"step": 1}
    assert second.details == {"step": 2}


def test_build_takes_the_correlation_ids_in_effect():
    """Inside a correlation() block the built event carries its ids."""
    with correlation(correlation_id="corr-1", request_id="req-1", trace_id="t-1", span_id="s-1"):
        event = AuditEventBuilder().event_type(AuditEventType.WORKFLOW).build()
    assert (event.correlation_id, event.request_id, event.trace_id, event.span_id) == (
        "corr-1",
        "req-1",
        "t-1",
        "s-1",
    )


def test_an_explicit_correlation_id_wins_over_the_one_in_effect():
    """correlation_id() on the builder is kept; the other ids still come from the context."""
    with correlation(correlation_id="from-context", request_id="req-1"):
        event = AuditEventBuilder().event_type(AuditEventType.WORKFLOW).correlation_id("explicit").build()
    assert event.correlation_id == "explicit"
    assert event.request_id == "req-1"


def test_a_builder_without_context_leaves_the_service_fields_empty():
    """A standalone builder does not invent a service; a logger fills it in when logging."""
    event = AuditEventBuilder().event_type(AuditEventType.WORKFLOW).build()
    assert event.service_name is None
    assert event.compliance == []
