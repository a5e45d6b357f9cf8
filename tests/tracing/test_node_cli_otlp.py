"""``slimwire node --otel-endpoint``: spans reach an OTLP/HTTP collector (a fake one here)."""

from __future__ import annotations

import asyncio

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from slimwire import _http
from slimwire.dataplane import NodeProcess
from slimwire.names import Name
from slimwire.tracing import TraceParent, parse_traceparent
from tests.dataplane._client import RawClient, publish_msg

ALICE = Name("org", "ns", "alice", 1)
BOB = Name("org", "ns", "bob", 2)
SENDER = TraceParent(0x5B8AA5A2D2C872E8321CF37308D69DF2, 0x051581BF3CB55C13, 1)


async def test_spans_are_exported_over_otlp_http() -> None:
    received: list[tuple[str, bytes]] = []

    async def collector(request: _http.HttpRequest, _tls: object) -> _http.Response:
        received.append((request.path, request.body))
        return _http.Response(200, b"", "application/x-protobuf")

    server = _http.HttpServer(collector, "127.0.0.1", 0, limits=_http.Limits(body=1 << 20))
    await server.start()
    proc = NodeProcess("--otel-endpoint", f"127.0.0.1:{server.port}", "--node-id", "traced")
    await asyncio.to_thread(proc.start)
    try:
        alice = await RawClient.connect(proc.url, ALICE)
        bob = await RawClient.connect(proc.url, BOB)
        await alice.subscribe()
        msg = publish_msg(BOB, ALICE, b"hello")
        msg.metadata["traceparent"] = SENDER.format()
        bob.send(msg)
        (got,) = await alice.received(1)
        passed = parse_traceparent(got.metadata["traceparent"])
        assert passed is not None
        assert passed.trace_id == SENDER.trace_id
        assert passed.span_id != SENDER.span_id
        await alice.close()
        await bob.close()
    finally:
        code = await asyncio.to_thread(proc.stop)  # the node flushes its spans as it stops
        await server.close()
    assert code == 0, proc.output
    assert received, proc.output
    path, body = received[0]
    assert path == "/v1/traces"
    export = ExportTraceServiceRequest.FromString(body)
    (resource_spans,) = export.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "slim-data-plane"
    assert resource["service.instance.id"] == "traced"
    (scope,) = resource_spans.scope_spans
    (span,) = scope.spans
    assert span.name == "slim_process_message"
    assert int.from_bytes(span.trace_id, "big") == SENDER.trace_id
    assert int.from_bytes(span.parent_span_id, "big") == SENDER.span_id
    assert int.from_bytes(span.span_id, "big") == passed.span_id
