"""Two slimwire apps through a traced node: one trace, producer -> node -> consumer."""

from __future__ import annotations

import asyncio

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from slimwire.client import connect
from slimwire.config import NodeConfig, OpenTelemetryConfig, ServerConfig
from slimwire.dataplane import Node
from slimwire.tracing import consumer_span, publish_span, start_node_tracing
from tests.session._net import SECRET


async def test_a_session_message_is_traced_end_to_end() -> None:
    node_spans = InMemorySpanExporter()
    tracer = start_node_tracing(OpenTelemetryConfig(enabled=True), "mid", exporter=node_spans)
    app_spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(app_spans))
    apps = provider.get_tracer("app")
    config = NodeConfig(node_id="mid", servers=(ServerConfig(host="127.0.0.1", port=0),))
    async with asyncio.timeout(30), Node(config, tracer=tracer) as node:
        url = f"http://127.0.0.1:{node.port}"
        a = await connect(url, name="org/ns/tr-a", secret=SECRET)
        b = await connect(url, name="org/ns/tr-b", secret=SECRET)
        try:
            s = await a.open_session("org/ns/tr-b", reliable=True)
            r = await b.accept(5)
            metadata: dict[str, str] = {}
            with publish_span(metadata, "send", tracer=apps):
                await s.publish(b"hello", metadata=metadata, wait=True, timeout=10)
            msg = await r.receive(timeout=10)
            with consumer_span(msg.metadata, "handle", tracer=apps):
                pass
        finally:
            await a.close()
            await b.close()
    sent, handled = app_spans.get_finished_spans()
    assert (sent.kind, handled.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
    hops = [
        span
        for span in node_spans.get_finished_spans()
        if span.context.trace_id == sent.context.trace_id
    ]
    (hop,) = hops  # the data message (its ack carries no traceparent)
    assert hop.parent is not None
    assert hop.parent.span_id == sent.context.span_id
    assert (hop.attributes or {})["session_type"] == "SESSION_MESSAGE_TYPE_MSG"
    assert handled.parent is not None
    assert handled.parent.span_id == hop.context.span_id
    assert handled.context.trace_id == sent.context.trace_id
