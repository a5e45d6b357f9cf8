"""``connect(..., tracing=...)``: apps make their spans themselves, through a traced node."""

from __future__ import annotations

import asyncio

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from slimwire.client import connect
from slimwire.config import NodeConfig, OpenTelemetryConfig, ServerConfig
from slimwire.dataplane import Node
from slimwire.tracing import TRACEPARENT, start_node_tracing
from tests.session._net import SECRET


async def test_publish_and_receive_spans_without_app_code() -> None:
    node_spans = InMemorySpanExporter()
    tracer = start_node_tracing(OpenTelemetryConfig(enabled=True), "mid", exporter=node_spans)
    app_spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(app_spans))
    config = NodeConfig(node_id="mid", servers=(ServerConfig(host="127.0.0.1", port=0),))
    async with asyncio.timeout(30), Node(config, tracer=tracer) as node:
        url = f"http://127.0.0.1:{node.port}"
        a = await connect(url, name="org/ns/ct-a", secret=SECRET, tracing=provider.get_tracer("a"))
        b = await connect(url, name="org/ns/ct-b", secret=SECRET, tracing=provider.get_tracer("b"))
        plain = await connect(url, name="org/ns/ct-c", secret=SECRET)  # tracing off
        try:
            s = await a.open_session("org/ns/ct-b", reliable=True)
            r = await b.accept(5)
            mid = await s.publish(b"hello", metadata={"k": "v"}, wait=True, timeout=10)
            msg = await r.receive(timeout=10)
            assert msg.metadata["k"] == "v"
            assert TRACEPARENT in msg.metadata  # what the node passed on
            # an untraced sender's message starts no span at a traced receiver
            s2 = await plain.open_session("org/ns/ct-b")
            r2 = await b.accept(5)
            await s2.publish(b"untraced")
            assert TRACEPARENT not in (await r2.receive(timeout=10)).metadata
        finally:
            for app in (a, b, plain):
                await app.close()
    spans = app_spans.get_finished_spans()
    (sent,) = [x for x in spans if x.kind is SpanKind.PRODUCER]
    (got,) = [x for x in spans if x.kind is SpanKind.CONSUMER]
    assert sent.name == "slim publish"
    assert (sent.attributes or {})["messaging.message.id"] == str(mid)
    assert (sent.attributes or {})["messaging.destination.name"].startswith("org/ns/ct-b")
    (hop,) = [
        x for x in node_spans.get_finished_spans() if x.context.trace_id == sent.context.trace_id
    ]
    assert hop.parent is not None
    assert hop.parent.span_id == sent.context.span_id
    assert got.name == "slim receive"
    assert got.parent is not None
    assert got.parent.span_id == hop.context.span_id
    assert (got.attributes or {})["messaging.message.id"] == str(mid)
    assert (got.attributes or {})["slim.source"].startswith("org/ns/ct-a")
