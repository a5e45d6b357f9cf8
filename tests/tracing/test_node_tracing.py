"""A node with tracing on: a span per message with a traceparent, the trace passed on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from slimwire._proto import data_plane_pb2 as pb
from slimwire.config import NodeConfig, OpenTelemetryConfig, ServerConfig, parse_config
from slimwire.dataplane import ConnType, Forwarder, Node
from slimwire.names import Name, format_id
from slimwire.tracing import NodeTracer, TraceParent, parse_traceparent, start_node_tracing
from tests.dataplane._client import RawClient, publish_msg
from tests.dataplane._helpers import TestMac

ALICE = Name("org", "ns", "alice", 11)
BOB = Name("org", "ns", "bob", 22)
NOBODY = Name("org", "ns", "nobody", 33)
SENDER = TraceParent(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, 1)
ON = OpenTelemetryConfig(enabled=True, service_name="test-node")


def tracer() -> tuple[NodeTracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return start_node_tracing(ON, "n1", exporter=exporter), exporter


@pytest.fixture
async def traced() -> AsyncIterator[tuple[Node, InMemorySpanExporter]]:
    t, exporter = tracer()
    cfg = NodeConfig(node_id="n1", servers=(ServerConfig(host="127.0.0.1", port=0),))
    async with Node(cfg, tracer=t) as node:
        yield node, exporter


async def test_a_traced_message_gets_a_child_span_and_carries_the_trace_on(
    traced: tuple[Node, InMemorySpanExporter],
) -> None:
    node, exporter = traced
    alice = await RawClient.connect(node.url, ALICE)
    bob = await RawClient.connect(node.url, BOB)
    await alice.subscribe()
    msg = publish_msg(BOB, ALICE, b"traced")
    msg.metadata["traceparent"] = SENDER.format()
    msg.metadata["tracestate"] = "vendor=1"
    msg.metadata["rpc-id"] = "42"
    bob.send(msg)
    plain = publish_msg(BOB, ALICE, b"plain")
    plain.metadata["rpc-id"] = "43"
    bob.send(plain)
    got = await alice.received(2)
    assert [m.publish.msg.app_payload.blob for m in got] == [b"traced", b"plain"]

    (span,) = exporter.get_finished_spans()  # the untraced message made none
    assert span.name == "slim_process_message"
    assert span.context.trace_id == SENDER.trace_id
    assert span.parent is not None
    assert span.parent.span_id == SENDER.span_id
    attrs = span.attributes or {}
    assert attrs["source"] == "org/ns/bob/" + format_id(22)
    assert attrs["destination"] == "org/ns/alice/" + format_id(11)
    assert attrs["service_id"] == "n1"
    assert attrs["session_type"] == "SESSION_MESSAGE_TYPE_UNSPECIFIED"
    conns = {c.conn_id: c for c in node.connections()}
    assert conns[attrs["connection_id"]].conn_type is ConnType.EDGE
    (out,) = attrs["slimwire.out_connections"]  # type: ignore[misc]
    assert out != attrs["connection_id"]
    assert attrs["slimwire.message_size"] > 0
    assert "slimwire.drop_reason" not in attrs
    assert span.resource.attributes["service.name"] == "test-node"

    # the consumer's parent is the node's span, in the sender's trace; the rest is untouched
    first, second = got
    passed = parse_traceparent(first.metadata["traceparent"])
    assert passed == TraceParent(SENDER.trace_id, span.context.span_id, 1)
    assert first.metadata["tracestate"] == "vendor=1"
    assert first.metadata["rpc-id"] == "42"
    assert dict(second.metadata) == {"rpc-id": "43"}
    assert alice.info.mac is not None
    assert alice.info.mac.verify(first.publish.header)  # the header went through unchanged
    await alice.close()
    await bob.close()


async def test_a_dropped_traced_message_says_why(
    traced: tuple[Node, InMemorySpanExporter],
) -> None:
    node, exporter = traced
    bob = await RawClient.connect(node.url, BOB)
    msg = publish_msg(BOB, NOBODY, b"lost")
    msg.metadata["traceparent"] = SENDER.format()
    bob.send(msg)
    await node.wait_for(lambda n: any(c.drops for c in n.connections()), timeout=5)
    (span,) = exporter.get_finished_spans()
    attrs = span.attributes or {}
    assert attrs["slimwire.drop_reason"] == "no_route"
    assert attrs["slimwire.out_connections"] == ()
    assert span.status.status_code is StatusCode.ERROR
    await bob.close()


def _sub(mac: object, name: Name) -> bytes:
    sub = pb.Message()
    h = sub.subscribe.header
    name.fill_proto(h.source)
    name.fill_proto(h.destination)
    h.fanout = 1
    h.ttl = 8
    sub.subscribe.subscription_id = 5
    mac.sign(h)  # type: ignore[attr-defined]
    return sub.SerializeToString()


def test_untraced_runs_around_a_traced_message_are_routed_in_order() -> None:
    t, exporter = tracer()
    fwd = Forwarder("n1", tracer=t)
    amac, bmac = TestMac(b"a"), TestMac(b"b")
    a = fwd.add_connection(ConnType.EDGE, mac=amac)
    b = fwd.add_connection(ConnType.EDGE, mac=bmac)
    fwd.receive(b, _sub(bmac, ALICE))
    fwd.take_outputs()
    batch = []
    for i in range(5):
        m = publish_msg(BOB, ALICE, b"%d" % i)
        if i in (1, 3):
            m.metadata["traceparent"] = SENDER.format()
        if i == 4:
            m.metadata["traceparent"] = "not a traceparent"
        amac.sign(m.publish.header)
        batch.append(m.SerializeToString())
    fwd.receive_batch(a, batch)
    ((dest, out),) = fwd.take_outputs()
    assert dest == b
    got = [pb.Message.FromString(d) for d in out]
    assert [m.publish.msg.app_payload.blob for m in got] == [b"0", b"1", b"2", b"3", b"4"]
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    for m, span in zip((got[1], got[3]), spans, strict=True):
        tp = parse_traceparent(m.metadata["traceparent"])
        assert tp is not None
        assert tp.span_id == span.context.span_id
    assert got[4].metadata["traceparent"] == "not a traceparent"  # not ours to fix


def test_unsampled_parents_are_passed_on_unsampled() -> None:
    t, exporter = tracer()
    msg = publish_msg(BOB, ALICE, b"x")
    msg.metadata["traceparent"] = SENDER._replace(flags=0).format()
    began = t.begin(msg.SerializeToString(), 1)
    assert began is not None
    raw, span = began
    t.end(span, [2], None)
    assert exporter.get_finished_spans() == ()
    tp = parse_traceparent(pb.Message.FromString(raw).metadata["traceparent"])
    assert tp is not None
    assert tp.trace_id == SENDER.trace_id
    assert not tp.sampled


async def test_the_config_turns_tracing_on_and_off() -> None:
    text = """
tracing:
  opentelemetry:
    enabled: true
    service_name: edge-1
    grpc: {endpoint: "http://127.0.0.1:9"}
services:
  slim/0:
    dataplane:
      servers: [{endpoint: "127.0.0.1:0", tls: {insecure: true}}]
"""
    cfg = parse_config(text)
    assert cfg.opentelemetry == OpenTelemetryConfig(
        enabled=True, endpoint="http://127.0.0.1:9", service_name="edge-1"
    )
    async with Node(cfg) as node:
        assert isinstance(node.tracer, NodeTracer)
    off = parse_config(text.replace("enabled: true", "enabled: false"))
    assert Node(off).tracer is None
    assert Node(parse_config(text.replace("    enabled: true\n", ""))).tracer is None


def test_bad_tracing_sections_are_refused() -> None:
    from slimwire.errors import ConfigError

    base = "services: {slim/0: {dataplane: {servers: [{endpoint: '127.0.0.1:0'}]}}}\n"
    for section, why in (
        ("{enabled: true, exporter: x}", "exporter"),
        ("{enabled: true, sample_ratio: 2}", "sample_ratio"),
        ("{enabled: maybe}", "enabled"),
        ("{grpc: {endpoint: [1]}}", "endpoint"),
    ):
        with pytest.raises(ConfigError, match=why):
            parse_config(f"tracing: {{opentelemetry: {section}}}\n" + base)
    cfg = parse_config("tracing: {opentelemetry: {endpoint: 'c:4318'}}\n" + base)
    assert cfg.opentelemetry == OpenTelemetryConfig(endpoint="http://c:4318")
    assert parse_config(base).opentelemetry is None
