"""Node telemetry through the controller: the Prometheus text parser (fuzzed: it reads what a
node sends), the totals it computes, and end to end over loopback - a real node with
``/metrics`` registers, advertises it in ``ConnectionDetails.metadata``, the controller scrapes
it, and ``slimwire ctl node list`` (table and JSON) and the controller's ``/metrics`` show it."""

from __future__ import annotations

import asyncio
import json
import math
import sys
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slimwire._proto import data_plane_pb2 as pb
from slimwire.config import NodeConfig, ServerConfig
from slimwire.control._controller import Controller
from slimwire.control._store import Store
from slimwire.control._telemetry import (
    Sample,
    figures_from_samples,
    http_get,
    parse_prometheus,
    render_controller_metrics,
)
from slimwire.control._wiring import start_node_control
from slimwire.dataplane import Node
from slimwire.metrics import MetricsServer, _Family, served_metrics_url
from slimwire.names import Name
from tests.dataplane._client import RawClient, publish_msg

LO = ("127.0.0.1", 0)


async def _until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.02)


@given(st.text(max_size=400))
def test_parser_only_ever_raises_value_error(text: str) -> None:
    try:
        samples = parse_prometheus(text)
    except ValueError:
        return
    assert all(isinstance(s.value, float) for s in samples)


_names = st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True)
_labels = st.dictionaries(_names, st.text(max_size=15), max_size=3)
_values = st.integers(min_value=0, max_value=2**50) | st.floats(
    min_value=-1e9, max_value=1e9, allow_nan=False
)


@given(st.lists(st.tuples(_names, _labels, _values), max_size=8))
def test_parser_reads_back_what_the_renderer_writes(
    rows: list[tuple[str, dict[str, str], float]],
) -> None:
    fam = _Family("x", "gauge", "help")
    expected = []
    for name, labels, value in rows:
        fam.name = name
        fam.add(value, **labels)
        expected.append(Sample(name, tuple(labels.items()), float(value)))
    text = "\n".join(fam.render())
    got = parse_prometheus(text)
    assert [(s.name, s.labels) for s in got] == [(s.name, s.labels) for s in expected]
    for g, e in zip(got, expected, strict=True):
        assert math.isclose(g.value, e.value, rel_tol=1e-9)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('m{a="1"', "unclosed"),
        ("m{a=1} 2", "not quoted"),
        ('m{a="1} 2', "unterminated"),
        ("m 1 2 3", "timestamp"),
        ("m abc", "could not convert"),
        ("9m 1", "bad metric name"),
        ('m{a="1"b="2"} 1', "commas"),
    ],
)
def test_parser_refuses_malformed_lines(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_prometheus(text)


def test_figures_are_totals_over_links() -> None:
    text = "\n".join(
        [
            "# HELP x y",
            "slimwire_subscriptions 4",
            'slimwire_connections{type="edge",state="up"} 2',
            'slimwire_connections{type="remote",state="down"} 1',
            'slimwire_link_messages_received_total{conn="1"} 5',
            'slimwire_link_messages_received_total{conn="2"} 7',
            'slimwire_link_bytes_sent_total{conn="1"} 100',
            'slimwire_link_drops_total{conn="1",reason="no_route"} 3',
            'slimwire_link_drops_total{conn="2",reason="no_route"} 1',
            'slimwire_link_drops_total{conn="2",reason="bad_mac"} 2',
            'slimwire_link_retransmissions_total{conn="1",kind="request"} 2',
            'slimwire_link_retransmissions_total{conn="2",kind="request"} 1',
            'slimwire_link_retransmissions_total{conn="2",kind="reply"} 4',
            "unrelated_metric NaN",
        ]
    )
    f = figures_from_samples(parse_prometheus(text), 42.0)
    assert (f.subscriptions, f.connections, f.connections_up) == (4, 3, 2)
    assert (f.messages_in, f.messages_out, f.bytes_in, f.bytes_out) == (12, 0, 0, 100)
    assert dict(f.drops) == {"no_route": 4, "bad_mac": 2}
    assert dict(f.retransmissions) == {"request": 3, "reply": 4}
    assert f.to_json()["last_seen"] == 42.0
    assert f.to_json()["retransmissions"] == {"reply": 4, "request": 3}
    text = render_controller_metrics(1, 1, {}, {}, {"n1": f})
    assert _value(text, "slimwire_controller_node_retransmissions", node="n1", kind="reply") == 4


def _value(text: str, name: str, **labels: str) -> float:
    for s in parse_prometheus(text):
        if s.name == name and all((k, v) in s.labels for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no {name} {labels} in\n{text}")


def test_controller_exposition() -> None:
    text = render_controller_metrics(1, 2, {"applied": 3}, {"pending": 1}, {})
    assert _value(text, "slimwire_controller_nodes_connected") == 1
    assert _value(text, "slimwire_controller_links", status="applied") == 3
    assert _value(text, "slimwire_controller_routes", status="pending") == 1


async def _ctl(*argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "slimwire",
        "ctl",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def test_node_figures_reach_ctl_and_controller_metrics() -> None:
    controller = Controller(
        Store(),
        southbound=LO,
        northbound=LO,
        telemetry_interval=0.2,
        metrics=("127.0.0.1", 0),
    )
    cfg = NodeConfig(node_id="t1", servers=(ServerConfig(host="127.0.0.1", port=0),))
    async with controller, Node(cfg) as node, MetricsServer(node, "0.0.0.0") as metrics:
        service = {
            "node_id": "t1",
            "domain_name": "d1",
            "dataplane": {"servers": [{"endpoint": "127.0.0.1:0"}]},
            "controller": {
                "clients": [
                    {
                        "endpoint": f"127.0.0.1:{controller.southbound_port}",
                        "tls": {"insecure": True},
                    }
                ]
            },
        }
        control = await start_node_control(node, service)
        rx = await RawClient.connect(node.url, Name("org", "ns", "rx", 1))
        tx = await RawClient.connect(node.url, Name("org", "ns", "tx", 2))
        try:
            await _until(lambda: "t1" in controller.connected_nodes())
            # advertised on 0.0.0.0: the controller scrapes the host the node connected from
            assert controller._telemetry_targets() == {
                "t1": f"http://127.0.0.1:{metrics.port}/metrics"
            }
            await rx.subscribe()
            for i in range(5):
                tx.publish(Name("org", "ns", "rx", 1), b"x" * (10 + i))
            await rx.received(5)
            # an unroutable publish is a drop the node counts, and the controller must see it
            tx.publish(Name("org", "ns", "nobody", 9), b"lost")
            # session retransmissions through the node: an RTX request from tx, a reply to it
            tx.send(_rtx(Name("org", "ns", "tx", 2), Name("org", "ns", "rx", 1), 3))
            tx.send(_rtx(Name("org", "ns", "tx", 2), Name("org", "ns", "rx", 1), 4))
            tx.send(_rtx(Name("org", "ns", "tx", 2), Name("org", "ns", "rx", 1), 4))

            def seen() -> bool:
                f = controller.telemetry.latest.get("t1")
                return (
                    f is not None
                    and f.messages_out >= 8
                    and sum(f.drops.values()) >= 1
                    and sum(f.retransmissions.values()) >= 3
                )

            await _until(seen)
            figures = controller.telemetry.latest["t1"]
            assert figures.connections_up == 2
            assert figures.messages_in >= 6
            assert figures.bytes_out >= sum(10 + i for i in range(5))
            assert figures.drops.get("no_route", 0) >= 1

            srv = ["--server", f"127.0.0.1:{controller.northbound_port}", "--timeout", "10"]
            code, out = await _ctl(*srv, "-o", "json", "node", "list")
            assert code == 0, out
            (row,) = json.loads(out)
            assert (row["node_id"], row["status"]) == ("t1", "Connected")
            tel = row["telemetry"]
            assert tel["messages_out"] >= 5
            assert tel["connections"] == 2
            assert tel["drops"]["no_route"] >= 1
            assert tel["retransmissions"] == {"reply": 2, "request": 1}
            assert tel["metrics_url"] == f"http://127.0.0.1:{metrics.port}/metrics"
            assert tel["last_seen"] > 0

            code, out = await _ctl(*srv, "node", "list")
            assert code == 0, out
            lines = out.splitlines()
            assert lines[2].split() == [
                "NODE_ID", "DOMAIN", "STATUS", "ENDPOINT", "PUBLIC_ENDPOINT", "CONNS", "SUBS",
                "MSGS_IN", "MSGS_OUT", "BYTES_IN", "BYTES_OUT", "DROPS", "RTX", "LAST_SEEN",
            ]  # fmt: skip
            cells = lines[4].split()
            assert cells[:3] == ["t1", "d1", "Connected"]
            assert int(cells[8]) >= 5
            assert "no_route=" in cells[11]
            assert cells[12] == "1/2"

            text = await http_get(f"http://127.0.0.1:{controller.metrics_port}/metrics", 5.0)
            assert _value(text, "slimwire_controller_nodes_connected") == 1
            assert _value(text, "slimwire_controller_node_messages_out", node="t1") >= 5
            assert _value(text, "slimwire_controller_node_drops", node="t1", reason="no_route") >= 1
            rtx = _value(text, "slimwire_controller_node_retransmissions", node="t1", kind="reply")
            assert rtx == 2
        finally:
            await rx.close()
            await tx.close()
            await control.aclose()
        await _until(lambda: not controller.connected_nodes())
        # a node that left is not scraped any more; its last figures stay, with their time
        assert controller._telemetry_targets() == {}
        assert "t1" in controller.telemetry.latest


def _rtx(src: Name, dst: Name, kind: int) -> pb.Message:
    msg = publish_msg(src, dst, b"again")
    msg.publish.session.session_message_type = kind  # type: ignore[assignment]
    return msg


async def test_a_node_under_a_controller_reports_figures_without_metrics_flag() -> None:
    """No ``--metrics``: the node agent starts the endpoint the controller scrapes by itself,
    and counts retransmissions because someone reads them now."""
    controller = Controller(Store(), southbound=LO, northbound=LO, telemetry_interval=0.2)
    cfg = NodeConfig(node_id="t2", servers=(ServerConfig(host="127.0.0.1", port=0),))
    async with controller, Node(cfg) as node:
        assert not node.count_retransmissions
        service = {
            "node_id": "t2",
            "domain_name": "d1",
            "dataplane": {"servers": [{"endpoint": "127.0.0.1:0"}]},
            "controller": {
                "clients": [{"endpoint": f"http://127.0.0.1:{controller.southbound_port}"}]
            },
        }
        control = await start_node_control(node, service)
        rx = await RawClient.connect(node.url, Name("org", "ns", "rx", 1))
        tx = await RawClient.connect(node.url, Name("org", "ns", "tx", 2))
        try:
            assert control.metrics is not None
            assert node.count_retransmissions
            await _until(lambda: "t2" in controller.connected_nodes())
            assert controller._telemetry_targets() == {"t2": control.metrics.url}
            await rx.subscribe()
            tx.send(_rtx(tx.name, rx.name, 3))
            rx.send(_rtx(rx.name, tx.name, 4))  # no route back to tx: counted all the same
            await rx.received(1)

            def seen() -> bool:
                f = controller.telemetry.latest.get("t2")
                return f is not None and sum(f.retransmissions.values()) >= 2

            await _until(seen)
            srv = ["--server", f"127.0.0.1:{controller.northbound_port}", "--timeout", "10"]
            code, out = await _ctl(*srv, "-o", "json", "node", "list")
            assert code == 0, out
            (row,) = json.loads(out)
            assert row["telemetry"]["retransmissions"] == {"reply": 1, "request": 1}
            assert row["telemetry"]["metrics_url"] == control.metrics.url
        finally:
            await rx.close()
            await tx.close()
            await control.aclose()
        assert served_metrics_url(node) is None  # closed with the control


async def test_telemetry_can_be_left_off() -> None:
    cfg = NodeConfig(node_id="t3", servers=(ServerConfig(host="127.0.0.1", port=0),))
    async with Node(cfg) as node:
        service = {
            "node_id": "t3",
            "controller": {"clients": [{"endpoint": "http://127.0.0.1:9"}]},
        }
        control = await start_node_control(node, service, telemetry=False)
        try:
            assert control.metrics is None
            assert served_metrics_url(node) is None
            assert not node.count_retransmissions
        finally:
            await control.aclose()


async def test_unreachable_metrics_endpoint_is_bounded() -> None:
    """A scrape of a dead endpoint fails within the timeout and records why."""
    from slimwire.control._telemetry import TelemetryScraper

    scraper = TelemetryScraper(lambda: {"gone": "http://127.0.0.1:9/metrics"}, timeout=2.0)
    await asyncio.wait_for(scraper.scrape_all(), 10)
    assert "gone" in scraper.errors
    assert "gone" not in scraper.latest
