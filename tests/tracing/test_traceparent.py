"""W3C traceparent parsing (fed by the network) and the app-side helpers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from slimwire.tracing import (
    TRACEPARENT,
    TraceParent,
    consumer_span,
    extract_context,
    inject_traceparent,
    parse_traceparent,
    publish_span,
    traces_url,
)


def test_valid_and_invalid_values() -> None:
    tp = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    assert tp == TraceParent(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, 1, 0)
    assert tp is not None
    assert tp.sampled
    for bad in (
        "",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  # v00 with extra
        "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ):
        assert parse_traceparent(bad) is None, bad
    future = parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-abc")
    assert future is not None
    assert future.version == 1
    assert not future.sampled


@given(st.text(max_size=80))
@settings(max_examples=300, deadline=None)
def test_arbitrary_text_never_raises(value: str) -> None:
    tp = parse_traceparent(value)
    if tp is not None:
        assert tp.trace_id
        assert tp.span_id
        assert parse_traceparent(tp.format()) == tp._replace(version=0)


@given(st.integers(1, 2**128 - 1), st.integers(1, 2**64 - 1), st.integers(0, 255))
def test_format_round_trips(trace_id: int, span_id: int, flags: int) -> None:
    tp = TraceParent(trace_id, span_id, flags)
    assert parse_traceparent(tp.format()) == tp
    assert tp.child(7) == TraceParent(trace_id, 7, flags)


def test_traces_url() -> None:
    assert traces_url("collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("http://c:4318/") == "http://c:4318/v1/traces"
    assert traces_url("https://c/v1/traces") == "https://c/v1/traces"


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_publish_then_consume_links_the_spans() -> None:
    provider, exporter = _provider()
    tracer = provider.get_tracer("test")
    metadata: dict[str, str] = {"PUBLISH_TO": "TRUE"}
    with publish_span(metadata, tracer=tracer) as sent:
        pass
    tp = parse_traceparent(metadata[TRACEPARENT])
    assert tp is not None
    assert tp.trace_id == sent.get_span_context().trace_id
    assert tp.span_id == sent.get_span_context().span_id
    assert metadata["PUBLISH_TO"] == "TRUE"
    with consumer_span(metadata, tracer=tracer, attributes={"k": "v"}):
        pass
    produced, consumed = exporter.get_finished_spans()
    assert produced.kind is SpanKind.PRODUCER
    assert consumed.kind is SpanKind.CONSUMER
    assert consumed.parent is not None
    assert consumed.parent.span_id == produced.context.span_id
    assert consumed.context.trace_id == produced.context.trace_id
    assert consumed.attributes == {"k": "v"}


def test_inject_without_a_span_writes_nothing_and_extract_of_nothing_is_empty() -> None:
    metadata: dict[str, str] = {}
    inject_traceparent(metadata)
    assert metadata == {}
    provider, _ = _provider()
    with provider.get_tracer("t").start_as_current_span("s") as span:
        inject_traceparent(metadata)
    ctx = extract_context(metadata)
    from opentelemetry.trace import get_current_span

    assert get_current_span(ctx).get_span_context().span_id == span.get_span_context().span_id
    assert get_current_span(extract_context({})).get_span_context().is_valid is False
