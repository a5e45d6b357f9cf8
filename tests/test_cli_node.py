"""``slimwire node`` as a subprocess: ready line, real traffic, SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from slimwire.dataplane import NodeProcess
from slimwire.names import Name

from .dataplane._client import RawClient

ALICE = Name("org", "ns", "alice", 1)
BOB = Name("org", "ns", "bob", 2)


async def test_node_subprocess_routes_and_stops_on_sigterm() -> None:
    proc = NodeProcess("--node-id", "cli-test", "--log-level", "info")
    await asyncio.to_thread(proc.start)
    try:
        assert proc.port > 0
        alice = await RawClient.connect(proc.url, ALICE)
        bob = await RawClient.connect(proc.url, BOB)
        await alice.subscribe()
        bob.publish(ALICE, b"via-cli")
        (msg,) = await alice.received(1)
        assert msg.publish.msg.app_payload.blob == b"via-cli"
    finally:
        code = await asyncio.to_thread(proc.stop)
    assert code == 0
    text = "\n".join(proc.output)
    assert "slimwire node ready on 127.0.0.1:" in text
    assert "stopping: draining links" in text
    assert "node cli-test stopped" in text


async def test_two_cli_nodes_linked() -> None:
    upstream = await asyncio.to_thread(NodeProcess().start)
    downstream = None
    try:
        downstream = await asyncio.to_thread(NodeProcess("--link", upstream.url).start)
        alice = await RawClient.connect(upstream.url, ALICE)
        bob = await RawClient.connect(downstream.url, BOB)
        await bob.subscribe()
        # wait for the subscription to cross the link
        for _ in range(200):
            alice.publish(BOB, b"probe")
            try:
                (msg,) = await bob.received(1, timeout=0.05)
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("subscription never reached the upstream node")
        assert msg.publish.header.ttl == 6
    finally:
        if downstream is not None:
            await asyncio.to_thread(downstream.stop)
        await asyncio.to_thread(upstream.stop)


def test_bad_config_exits_with_message(tmp_path: object) -> None:
    import pathlib

    assert isinstance(tmp_path, pathlib.Path)
    bad = tmp_path / "node.yaml"
    bad.write_text("services:\n  slim/0:\n    nodeid: x\n")
    result = subprocess.run(
        [sys.executable, "-m", "slimwire", "node", "--config", str(bad)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert b"unknown key services.slim/0.nodeid" in result.stderr
