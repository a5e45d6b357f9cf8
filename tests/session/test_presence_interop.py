"""Soft close and rejoin against the reference: a reference member in our group calls
``close_with_mode(SOFT)``, stays away, and calls ``rejoin()``. With MLS our moderator adds a
member while it is away, so its epoch is stale: our member NACKs, it sends REJOIN_REQUEST, our
moderator answers with a remove+add commit, and the data that follows decrypts on both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from slimwire.client import App, connect
from tests.interop._harness import AppSpec, NodeInfo, _App, start_node, unique
from tests.interop._ref_app import DEFAULT_SECRET, PAYLOAD_TYPE

SCRIPT = Path(__file__).with_name("_ref_presence.py")
TIMEOUT = 15.0

pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True)
class _PresenceSpec(AppSpec):
    def argv(self) -> list[str]:
        argv = super().argv()
        argv[1] = str(SCRIPT)
        return argv


@pytest.fixture(scope="module")
def ref_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeInfo]:
    with start_node("reference", tmp_path_factory.mktemp("presence-interop")) as node:
        yield node


@contextlib.asynccontextmanager
async def _our(node: NodeInfo, name: str) -> AsyncIterator[App]:
    app = await connect(node.endpoint, name=name, secret=DEFAULT_SECRET)
    try:
        yield app
    finally:
        await app.close()


async def _until(pred: object, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not pred():  # type: ignore[operator]
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("mls", [False, True], ids=["plain", "mls"])
async def test_reference_member_soft_closes_and_rejoins(
    ref_node: NodeInfo, mls: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="slimwire.session")
    me = f"org/ns/{unique('mod')}"
    ours = f"org/ns/{unique('ourp')}"
    late = f"org/ns/{unique('late')}"
    refp = f"org/ns/{unique('refp')}"
    flags = ("--moderator", me, *(("--mls",) if mls else ()))
    spec = _PresenceSpec("group-soft-rejoin", refp, ref_node.endpoint, flags, timeout=60)
    ref = _App(spec, ref_node.log.parent)
    await ref.start()
    try:
        await asyncio.wait_for(ref.ready.wait(), 20)
        async with (
            _our(ref_node, me) as app,
            _our(ref_node, ours) as member_app,
            _our(ref_node, late) as late_app,
        ):
            group = app.create_group("org/ns/presence", reliable=True, mls=mls)
            ref_name = await group.invite(refp, timeout=TIMEOUT)
            await group.invite(ours, timeout=TIMEOUT)
            member = await member_app.accept(timeout=TIMEOUT)
            await group.publish(b"soft", payload_type=PAYLOAD_TYPE, wait=True)
            await _until(lambda: group.status.get(ref_name) is False, TIMEOUT)
            await _until(lambda: member.status.get(ref_name) is False, TIMEOUT)
            if mls:  # a commit the absent member misses
                await group.invite(late, timeout=TIMEOUT)
                await late_app.accept(timeout=TIMEOUT)
            back = await group.receive(timeout=30)
            assert back.text == f"back from {refp}"
            assert group.status[ref_name] is True
            await group.publish(b"after", payload_type=PAYLOAD_TYPE)
            await asyncio.wait_for(ref.done.wait(), 30)
            await group.close()
    finally:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ref.done.wait(), 5)
        await ref.stop()
    result = ref.result()
    assert result.ok, result.explain()
    assert result["soft"] == "ok"
    assert result["rejoin"] == "ok"
    assert result["after"] == "after"
    # with MLS the stale member went through REJOIN_REQUEST and our remove+add commit
    assert ("rejoins (commit" in caplog.text) == mls


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip("reference apps run on Linux only")


@pytest.mark.parametrize("mls", [False, True], ids=["plain", "mls"])
async def test_our_member_soft_closes_and_rejoins_with_a_reference_moderator(
    ref_node: NodeInfo, mls: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="slimwire.session")
    moderator = f"org/ns/{unique('refmod')}"
    away, other, late = (f"org/ns/{unique(p)}" for p in ("away", "other", "late"))
    flags = ("--invite", f"{away},{other}", "--remove", late, "--reliable")
    flags += ("--mls",) if mls else ()
    spec = _PresenceSpec("group-moderator-presence", moderator, ref_node.endpoint, flags, 60)
    async with (
        _our(ref_node, away) as away_app,
        _our(ref_node, other) as other_app,
        _our(ref_node, late) as late_app,
    ):
        ref = _App(spec, ref_node.log.parent)
        await ref.start()
        try:
            mine = await away_app.accept(timeout=30)
            await other_app.accept(timeout=30)
            assert (await mine.receive(timeout=TIMEOUT)).text == "soft"
            await mine.soft_close(timeout=TIMEOUT)
            await late_app.accept(timeout=30)  # invited once the moderator saw us offline
            await mine.rejoin(timeout=TIMEOUT)
            await mine.publish(f"back from {away}", payload_type=PAYLOAD_TYPE)
            texts = []
            while "after" not in texts:
                texts.append((await mine.receive(timeout=TIMEOUT)).text)
            await asyncio.wait_for(ref.done.wait(), 30)
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ref.done.wait(), 5)
            await ref.stop()
    result = ref.result()
    assert result.ok, result.explain()
    assert result["saw_offline"]
    assert result["back"] == f"back from {away}"
    # with MLS our member missed the late member's commit: NACKed, it rejoined through the
    # reference moderator's remove+add commit (and the data after it decrypted both ways)
    assert ("refused our epoch; rejoining" in caplog.text) == mls
