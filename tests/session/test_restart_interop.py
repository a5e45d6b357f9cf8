"""A reliable session between two of our apps survives a **reference** node restart.

The node process is stopped (by PID) mid-session and a new one is started on the same port:
both apps re-dial, replay their subscriptions, and every message sent before, during and after
the outage arrives exactly once, in order (the test counts them). Our own node: see
``test_client.py::test_reliable_session_survives_node_restart``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from slimwire.client import connect
from slimwire.errors import SlimwireTimeout
from tests.interop._harness import (
    NODE_START_TIMEOUT,
    _NodeProcess,
    _reference_argv,
    free_port,
)
from tests.interop._ref_app import DEFAULT_SECRET

pytestmark = pytest.mark.timeout(120)


@contextlib.contextmanager
def _reference_node_on(port: int, log_dir: Path) -> Iterator[str]:
    node_id = f"ref-{uuid.uuid4().hex[:8]}"
    argv = [*_reference_argv((), "peer", node_id, log_dir), "--port", str(port)]
    node = _NodeProcess(argv, "reference", log_dir / f"node-{node_id}.log", False)
    try:
        ready = json.loads(node.wait_ready(NODE_START_TIMEOUT))
        yield str(ready["endpoint"])
    finally:
        node.stop()


async def test_reliable_session_survives_reference_node_restart(tmp_path: Path) -> None:
    port = free_port()
    before, during, after = 20, 20, 20
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(_reference_node_on(port, tmp_path))
        alice = await connect(url, name="org/ns/rs-alice", secret=DEFAULT_SECRET)
        bob = await connect(url, name="org/ns/rs-bob", secret=DEFAULT_SECRET)
        try:
            session = await alice.open_session(
                "org/ns/rs-bob", reliable=True, interval=0.5, max_retries=60
            )
            theirs = await bob.accept(timeout=10)
            for i in range(before):
                await session.publish(b"b%d" % i)
            await session.flush(timeout=20)
            stack.close()  # the node goes away mid-session
            await asyncio.sleep(0.3)
            for i in range(during):
                await session.publish(b"d%d" % i)
            with _reference_node_on(port, tmp_path):
                for i in range(after):
                    await session.publish(b"a%d" % i)
                await session.flush(timeout=45)
                got = [(await theirs.receive(timeout=15)).payload for _ in range(60)]
                with pytest.raises(SlimwireTimeout):
                    await theirs.receive(timeout=0.5)
                await session.close()
        finally:
            await alice.close()
            await bob.close()
    want = [b"b%d" % i for i in range(before)]
    want += [b"d%d" % i for i in range(during)] + [b"a%d" % i for i in range(after)]
    assert got == want
    assert not theirs.lost
