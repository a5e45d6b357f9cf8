"""The node's /metrics and /healthz: the request parser (fuzzed), the exposition format, and
live figures from a node's connection table over loopback, in-process and via the CLI."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slimwire.config import NodeConfig, ServerConfig
from slimwire.dataplane import Node
from slimwire.metrics import MAX_REQUEST, MetricsServer, Request, parse_request, render_metrics
from slimwire.names import Name
from tests.control._cluster import Proc
from tests.dataplane._client import RawClient

SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? -?[0-9.e+]+$')


async def _get(port: int, path: str, raw: bytes | None = None) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw if raw is not None else f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    async with asyncio.timeout(10):
        data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body.decode()


def _value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(
            f'{k}="{v}"' in line for k, v in labels.items()
        ):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} {labels} in\n{text}")


@given(st.binary(max_size=300))
def test_parse_request_only_ever_raises_value_error(head: bytes) -> None:
    try:
        req = parse_request(head)
    except ValueError:
        return
    assert req.method.isupper()
    assert req.path.startswith("/")


@given(
    st.sampled_from(["GET", "POST", "HEAD"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz/_-", max_size=40),
    st.text(alphabet="abc=&", max_size=10),
)
def test_parse_request_reads_method_and_path(method: str, path: str, query: str) -> None:
    head = f"{method} /{path}?{query} HTTP/1.1\r\nHost: h\r\nAccept: */*".encode()
    assert parse_request(head) == Request(method, "/" + path)


@pytest.mark.parametrize(
    ("head", "why"),
    [
        (b"GET / HTTP/1.1" + b"x" * MAX_REQUEST, "too large"),
        (b"GET /", "bad request line"),
        (b"get / HTTP/1.1", "bad request line"),
        (b"GET x HTTP/1.1", "bad request line"),
        ("GET /\u00e9 HTTP/1.1".encode(), "not ASCII"),
    ],
)
def test_parse_request_refuses_oversized_and_malformed(head: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_request(head)


def test_render_is_valid_exposition_with_escaped_labels() -> None:
    text = render_metrics('node "a"\\\n', [], 3, {"denied": {"publish": 2}})
    for line in text.splitlines():
        assert line.startswith("# ") or SAMPLE.match(line), line
    assert _value(text, "slimwire_subscriptions") == 3
    assert _value(text, "slimwire_policy_decisions_total", decision="denied", action="publish") == 2
    assert 'node_id="node \\"a\\"\\\\\\n"' in text


async def test_live_counters_and_health_from_a_node() -> None:
    cfg = NodeConfig(node_id="m1", servers=(ServerConfig(host="127.0.0.1", port=0),))
    async with Node(cfg) as node, MetricsServer(node) as metrics:
        rx = await RawClient.connect(node.url, Name("org", "ns", "rx", 1))
        tx = await RawClient.connect(node.url, Name("org", "ns", "tx", 2))
        try:
            await rx.subscribe()
            for i in range(5):
                tx.publish(Name("org", "ns", "rx", 1), b"x" * (10 + i))
            await rx.received(5)
            status, text = await _get(metrics.port, "/metrics")
            assert status == 200
            for line in text.splitlines():
                assert line.startswith("# ") or SAMPLE.match(line), line
            assert _value(text, "slimwire_node_info", node_id="m1") == 1
            assert _value(text, "slimwire_connections", type="edge", state="up") == 2
            assert _value(text, "slimwire_subscriptions") >= 1
            rx_conn = next(c for c in node.connections() if c.msgs_out >= 5)
            assert _value(
                text, "slimwire_link_messages_sent_total", conn=str(rx_conn.conn_id)
            ) == float(rx_conn.msgs_out)
            status, body = await _get(metrics.port, "/healthz")
            assert status == 200
            assert json.loads(body) == {
                "status": "ok",
                "node_id": "m1",
                "connections_up": 2,
                "connections": 2,
                "subscriptions": len(node.subscriptions()),
            }
            assert (await _get(metrics.port, "/nope"))[0] == 404
            assert (await _get(metrics.port, "", raw=b"POST /metrics HTTP/1.1\r\n\r\n"))[0] == 405
            assert (await _get(metrics.port, "", raw=b"\x00garbage\r\n\r\n"))[0] == 400
        finally:
            await rx.close()
            await tx.close()


async def test_slimwire_node_metrics_flag(tmp_path: Path) -> None:
    proc = Proc(
        ["node", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--node-id", "cli-m"],
        tmp_path / "node.log",
    )
    try:
        m = await proc.wait_line(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")
        status, text = await _get(int(m[1]), "/metrics")
        assert status == 200
        assert _value(text, "slimwire_node_info", node_id="cli-m") == 1
        status, body = await _get(int(m[1]), "/healthz")
        assert (status, json.loads(body)["status"]) == (200, "ok")
    finally:
        proc.stop()
    assert proc.proc.returncode == 0


def test_bad_metrics_address_is_a_usage_error() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "slimwire", "node", "--listen", "127.0.0.1:0", "--metrics", "x"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 2, out.stderr
    assert "--metrics" in out.stderr
