"""Our client surfaces a slimwire node's policy denials (over real sockets, a ``slimwire node``
process with a policy file): a refused publish raises :class:`PublishDenied` with the policy's
reason, from ``open_session`` (its discovery was refused), from ``publish(wait=True)`` of the
refused message, and from the session's next ``receive()``; each refusal is reported once, the
session and the app stay usable, and the refused messages reach nobody."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

import slimwire
from slimwire.errors import PublishDenied, SlimwireTimeout
from tests.interop._harness import NodeInfo, slimwire_node, unique
from tests.interop._ref_app import DEFAULT_SECRET

SECRET = DEFAULT_SECRET


def _policy(deny: tuple[str, str] | None = None) -> dict[str, object]:
    rules: list[dict[str, object]] = [
        {"id": "blocked", "effect": "deny", "subjects": ["*"], "actions": ["publish"],
         "names": ["org/ns/blocked"]},
        {"id": "ns", "effect": "allow", "subjects": ["org/ns/*"], "actions": "*",
         "names": ["org/ns"]},
    ]  # fmt: skip
    if deny is not None:
        subject, name = deny
        rules.append(
            {"id": "no-writes", "effect": "deny", "subjects": [subject], "actions": ["publish"],
             "names": [name]}
        )  # fmt: skip
    return {"default": "deny", "rules": rules}


class _Node:
    def __init__(self, info: NodeInfo, policy_path: Path) -> None:
        self.url = info.endpoint
        self.pid = info.pid
        self.policy_path = policy_path

    def set_policy(self, policy: dict[str, object]) -> None:
        tmp = self.policy_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(policy))
        os.replace(tmp, self.policy_path)
        os.kill(self.pid, signal.SIGHUP)  # the node process this module started, by PID


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Node]:
    tmp = tmp_path_factory.mktemp("denied-node")
    policy_path = tmp / "policy.json"
    policy_path.write_text(json.dumps(_policy()))
    cfg = {
        "services": {
            "slim/0": {
                "authorization": {
                    "file": str(policy_path),
                    "verifier": [{"shared_secret": SECRET}],
                    "watch_interval": 0,
                },
            }
        }
    }
    cfg_path = tmp / "node.yaml"
    cfg_path.write_text(json.dumps(cfg))
    with slimwire_node(tmp, extra_args=["--config", str(cfg_path)]) as info:
        yield _Node(info, policy_path)


async def _drain(session: slimwire.Session) -> list[bytes]:
    """Everything ``session`` receives until it has been quiet for a second."""
    seen: list[bytes] = []
    while True:
        try:
            seen.append((await session.receive(timeout=1.0)).payload)
        except SlimwireTimeout:
            return seen


async def test_open_session_to_a_denied_peer_raises_publish_denied(node: _Node) -> None:
    async with asyncio.timeout(30):
        alice = await slimwire.connect(node.url, name=f"org/ns/{unique('alice')}", secret=SECRET)
        bob = await slimwire.connect(node.url, name=f"org/ns/{unique('bob')}", secret=SECRET)
        try:
            # the discovery is refused: the open fails at once with the policy's reason
            with pytest.raises(PublishDenied, match="denied by rule 'blocked'") as caught:
                await alice.open_session("org/ns/blocked", timeout=20)
            assert caught.value.reason.startswith("publish denied by rule 'blocked'")
            assert caught.value.session_id is not None
            # the app is still usable
            async with alice.open_session(bob.name.without_id()) as s:
                await s.publish(b"hello")
                got = await (await bob.accept(timeout=10)).receive(timeout=10)
                assert got.payload == b"hello"
        finally:
            await alice.close()
            await bob.close()


async def test_denied_publish_raises_from_wait_and_from_next_receive(node: _Node) -> None:
    alice_base = f"org/ns/{unique('alice')}"
    bob_base = f"org/ns/{unique('bob')}"
    async with asyncio.timeout(60):
        alice = await slimwire.connect(node.url, name=alice_base, secret=SECRET)
        bob = await slimwire.connect(node.url, name=bob_base, secret=SECRET)
        try:
            s = await alice.open_session(bob_base, reliable=True, interval=0.3, max_retries=3)
            await s.publish(b"before", wait=True, timeout=10)
            incoming = await bob.accept(timeout=10)
            assert (await incoming.receive(timeout=10)).payload == b"before"

            node.set_policy(_policy((f"{alice_base}*", bob_base)))
            # the reload is asynchronous: probe until a publish is refused
            denied: PublishDenied | None = None
            while denied is None:
                try:
                    await s.publish(b"probe", wait=True, timeout=10)
                except PublishDenied as exc:
                    denied = exc
                await asyncio.sleep(0.1)
            assert denied.reason == "publish denied by rule 'no-writes'", denied.reason
            assert denied.session_id == s.session_id
            assert denied.message_id is not None
            # its retransmissions are refused too, but the refusal is reported only once
            with pytest.raises(SlimwireTimeout):
                await s.receive(timeout=1.0)

            # a refused publish nobody waits on: the next receive() raises it, once
            mid = await s.publish(b"refused")
            with pytest.raises(PublishDenied, match="no-writes") as caught:
                await s.receive(timeout=10)
            assert caught.value.message_id == mid
            assert caught.value.session_id == s.session_id
            assert not s.closed

            # the refused messages reached nobody
            seen = await _drain(incoming)
            assert b"refused" not in seen

            # allowed again: the same session carries on (a refused reliable message still
            # retransmitting may now get through as well)
            node.set_policy(_policy())
            while True:
                try:
                    await s.publish(b"after", wait=True, timeout=10)
                    break
                except PublishDenied:
                    await asyncio.sleep(0.1)
            got: set[bytes] = set()
            while b"after" not in got:
                got.add((await incoming.receive(timeout=10)).payload)
        finally:
            node.set_policy(_policy())
            await alice.close()
            await bob.close()
