"""``slimwire controller --keepalive SECONDS``: a node that goes silent without closing its
connection (its process frozen with SIGSTOP: no FIN, no RST, no PING ACK) is declared
NotConnected by the controller's HTTP/2 keepalive, and registers again once it is back."""

from __future__ import annotations

from pathlib import Path

from tests.control._cluster import ControllerProc, NodeProc, free_port, stop_all, until


async def test_frozen_node_is_noticed_and_comes_back(tmp_path: Path) -> None:
    south, north = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    ctl = ControllerProc(tmp_path, south, north, extra=["--keepalive", "0.5"])
    node = NodeProc(tmp_path, "k1", "da", f"http://{south}")
    try:
        await ctl.ready()
        await node.ready()

        async def status_is(want: int) -> bool:
            return (await ctl.nodes()).get("k1") == want

        await until(lambda: status_is(1), 20, "k1 connected")
        node.pause()
        # the default keepalive (10 s + 10 s) would still call it connected after this bound
        await until(lambda: status_is(2), 15, "frozen k1 declared not connected")
        node.resume()
        await until(lambda: status_is(1), 30, "k1 registered again")
    finally:
        stop_all([node, ctl])
