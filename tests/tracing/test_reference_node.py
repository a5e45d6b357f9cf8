"""A traced slimwire node in front of a reference node: the message whose traceparent we
rewrote crosses the reference node and reaches its app with our span as the parent."""

from __future__ import annotations

import asyncio
from pathlib import Path

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from slimwire.config import NodeConfig, OpenTelemetryConfig, ServerConfig
from slimwire.dataplane import Node
from slimwire.names import Name
from slimwire.tracing import TraceParent, parse_traceparent, start_node_tracing
from tests.dataplane._client import RawClient, publish_msg
from tests.interop._harness import reference_node

ALICE = Name("org", "ns", "alice", 11)
BOB = Name("org", "ns", "bob", 22)
SENDER = TraceParent(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, 1)


async def test_rewritten_trace_context_crosses_a_reference_node(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    tracer = start_node_tracing(OpenTelemetryConfig(enabled=True), "sw", exporter=exporter)
    with reference_node(tmp_path) as ref:
        cfg = NodeConfig(node_id="sw", servers=(ServerConfig(host="127.0.0.1", port=0),))
        async with asyncio.timeout(30), Node(cfg, tracer=tracer) as node:
            link = await node.add_link(ref.endpoint, connection_type="peer")
            await node.wait_for(
                lambda n: any(c.conn_id == link and c.state.value == "up" for c in n.connections())
            )
            alice = await RawClient.connect(ref.endpoint, ALICE)  # on the reference node
            bob = await RawClient.connect(node.url, BOB)  # on ours
            try:
                await alice.subscribe()
                got = None
                for i in range(100):  # the subscription crosses the link asynchronously
                    msg = publish_msg(BOB, ALICE, b"traced %d" % i)
                    msg.metadata["traceparent"] = SENDER.format()
                    msg.metadata["seq"] = str(i)
                    bob.send(msg)
                    try:
                        (got,) = await alice.received(1, timeout=0.1)
                        break
                    except TimeoutError:
                        continue
                assert got is not None, "nothing crossed the reference node"
                seq = got.metadata["seq"]
                passed = parse_traceparent(got.metadata["traceparent"])
                assert passed is not None
                assert passed.trace_id == SENDER.trace_id
                (span,) = [
                    s for s in exporter.get_finished_spans() if s.context.span_id == passed.span_id
                ]
                assert (span.attributes or {})["slimwire.out_connections"] == (link,)
                assert span.parent is not None
                assert span.parent.span_id == SENDER.span_id
                assert got.publish.msg.app_payload.blob == b"traced " + seq.encode()
            finally:
                await asyncio.gather(alice.close(), bob.close())
