"""Our asyncio client against the reference: a reference node, and a reference app as the peer.

Every combination of who initiates (our app or the reference app), reliable or best-effort,
and which side asks (``forward``: the initiator sends requests and the responder echoes them;
``reverse``: the responder asks) runs a real session over loopback sockets and ends with the
initiator closing it; both sides must see every message, in order, and see the close. The
reference app reports what it saw as JSON (``tests/interop/_ref_app.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from slimwire._proto import data_plane_pb2 as pb
from slimwire.client import App, connect
from slimwire.errors import DeliveryFailed, SessionClosed
from slimwire.session import Outputs
from slimwire.session._wire import ACK_FROM
from tests.interop._harness import AppSpec, NodeInfo, _App, start_node, unique
from tests.interop._ref_app import DEFAULT_SECRET, PAYLOAD_TYPE

COUNT = 3
TIMEOUT = 10.0

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module", params=["reference", "slimwire"])
def node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeInfo]:
    """The node every app goes through: a reference node and a slimwire node."""
    with start_node(request.param, tmp_path_factory.mktemp("client-interop")) as info:
        yield info


@contextlib.asynccontextmanager
async def ref_app(
    node: NodeInfo, role: str, name: str, flags: tuple[str, ...]
) -> AsyncIterator[_App]:
    app = _App(AppSpec(role, name, node.endpoint, flags, timeout=30), node.log.parent)
    await app.start()
    try:
        yield app
    finally:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(app.done.wait(), 30)
        await app.stop()


@contextlib.asynccontextmanager
async def our_app(node: NodeInfo, name: str) -> AsyncIterator[App]:
    app = await connect(node.endpoint, name=name, secret=DEFAULT_SECRET)
    try:
        yield app
    finally:
        await app.close()


def _flags(reliable: bool, direction: str, peer: str = "", mls: bool = False) -> tuple[str, ...]:
    flags = ("--count", str(COUNT), "--direction", direction)
    if peer:
        flags += ("--peer", peer)
    if mls:
        flags += ("--mls",)
    return flags + (("--reliable",) if reliable else ())


@pytest.mark.parametrize("mls", [False, True], ids=["plain", "mls"])
@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("reliable", [False, True], ids=["best-effort", "reliable"])
async def test_we_initiate(node: NodeInfo, reliable: bool, direction: str, mls: bool) -> None:
    peer = f"org/ns/{unique('refbob')}"
    flags = _flags(reliable, direction, mls=mls)
    async with ref_app(node, "p2p-responder", peer, flags) as ref:
        await asyncio.wait_for(ref.ready.wait(), 20)
        async with our_app(node, f"org/ns/{unique('alice')}") as app:
            session = await app.open_session(
                peer,
                reliable=reliable,
                interval=0.5,
                max_retries=10,
                metadata={"interop": "1"},
                mls=mls,
            )
            assert session.initiator
            assert session.peer.short().startswith(peer)
            for i in range(COUNT):
                if direction == "forward":
                    await session.publish(
                        f"req-{i}-0",
                        payload_type=PAYLOAD_TYPE,
                        metadata={"seq": str(i)},
                        wait=True,
                        timeout=TIMEOUT,
                    )
                    msg = await session.receive(timeout=TIMEOUT)
                    assert msg.text == f"echo:req-{i}-0"
                    assert msg.payload_type == PAYLOAD_TYPE
                    assert msg.metadata == {"seq": str(i)}  # no internal keys leak
                else:
                    msg = await session.receive(timeout=TIMEOUT)
                    assert msg.text == f"req-{i}-0"
                    await msg.reply(f"echo:{msg.text}", payload_type=PAYLOAD_TYPE, wait=True)
            await session.close()
            assert session.closed
        await asyncio.wait_for(ref.done.wait(), 30)
    result = ref.result()
    assert result.ok, result.explain()
    assert result["session_metadata"] == {"interop": "1"}
    assert result["closed_by_peer"] is True
    got = [r["payload"] for r in result["received"]]
    want = [f"{'' if direction == 'forward' else 'echo:'}req-{i}-0" for i in range(COUNT)]
    assert got == want


@pytest.mark.parametrize("mls", [False, True], ids=["plain", "mls"])
@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("reliable", [False, True], ids=["best-effort", "reliable"])
async def test_reference_initiates(
    node: NodeInfo, reliable: bool, direction: str, mls: bool
) -> None:
    me = f"org/ns/{unique('bob')}"
    async with our_app(node, me) as app:
        flags = _flags(reliable, direction, peer=me, mls=mls)
        async with ref_app(node, "p2p-initiator", f"org/ns/{unique('refalice')}", flags) as ref:
            session = await app.accept(timeout=20)
            assert not session.initiator
            assert session.metadata == {"interop": "1"}
            assert session.config.reliable is reliable
            assert session.config.mls is mls
            for i in range(COUNT):
                if direction == "forward":
                    msg = await session.receive(timeout=TIMEOUT)
                    assert msg.text == f"req-{i}-0"
                    assert msg.metadata == {"seq": str(i)}
                    await msg.reply(f"echo:{msg.text}", payload_type=PAYLOAD_TYPE, wait=True)
                else:
                    await session.publish(f"req-{i}-0", payload_type=PAYLOAD_TYPE, wait=True)
                    msg = await session.receive(timeout=TIMEOUT)
                    assert msg.text == f"echo:req-{i}-0"
            with pytest.raises(SessionClosed):
                await session.receive(timeout=TIMEOUT)  # the reference closes the session
            await asyncio.wait_for(ref.done.wait(), 30)
    result = ref.result()
    assert result.ok, result.explain()
    got = [r["payload"] for r in result["replies"]]
    want = [f"{'echo:' if direction == 'forward' else ''}req-{i}-0" for i in range(COUNT)]
    assert got == want


async def test_reference_pipeline_gets_an_ack_per_message(node: NodeInfo) -> None:
    """A reference sender pipelines reliable messages to us: it never offered ranged acks, so
    each message gets its own MSG_ACK however many arrive in one read, and every one of its
    completion handles resolves (the reference takes no other kind of ack)."""
    me = f"org/ns/{unique('bob')}"
    count = 300
    async with our_app(node, me) as app:
        layer = app._layer
        acks: list[tuple[int, str | None]] = []
        take = layer.take

        def spy() -> Outputs:
            out = take()
            for m in out.messages:
                if m.publish.session.session_message_type == pb.SESSION_MESSAGE_TYPE_MSG_ACK:
                    acks.append((m.publish.session.message_id, m.metadata.get(ACK_FROM)))
            return out

        layer.take = spy  # type: ignore[method-assign]
        flags = ("--count", str(count), "--peer", me, "--reliable")
        async with ref_app(node, "p2p-pipeline", f"org/ns/{unique('refalice')}", flags) as ref:
            session = await app.accept(timeout=20)
            assert session.config.reliable
            got = [(await session.receive(timeout=TIMEOUT)).text for _ in range(count)]
            assert got == [f"pipe-{i}" for i in range(count)]
            await asyncio.wait_for(ref.done.wait(), 30)
    assert [a for a in acks if a[1] is not None] == []  # never a ranged ack
    assert {mid for mid, _ in acks} == set(range(1, count + 1))
    result = ref.result()
    assert result.ok, result.explain()
    assert result["acked"] == count, result["outcomes"]


@pytest.mark.parametrize("reliable", [False, True], ids=["best-effort", "reliable"])
async def test_ours_both_sides_through_reference_node(node: NodeInfo, reliable: bool) -> None:
    """Many messages pipelined, then request/reply round trips (timings printed, not asserted)."""
    bob_name = f"org/ns/{unique('bob')}"
    async with (
        our_app(node, bob_name) as bob,
        our_app(node, f"org/ns/{unique('alice')}") as alice,
    ):

        async def echo() -> int:
            session = await bob.accept(timeout=TIMEOUT)
            count = 0
            async for msg in session:
                count += 1
                if msg.payload_type == "rpc":
                    await msg.reply(msg.payload, payload_type="rpc")
            return count

        server = asyncio.create_task(echo())
        async with alice.open_session(bob_name, reliable=reliable) as session:
            for i in range(300):
                await session.publish(b"bulk-%d" % i, payload_type="bulk")
            await session.flush(timeout=TIMEOUT)
            rtts = []
            for i in range(50):
                t0 = time.perf_counter()
                await session.publish(b"ping-%d" % i, payload_type="rpc")
                msg = await session.receive(timeout=TIMEOUT)
                rtts.append(time.perf_counter() - t0)
                assert msg.payload == b"ping-%d" % i
        assert await asyncio.wait_for(server, TIMEOUT) == 350
        ms = sorted(r * 1000 for r in rtts)
        mode = "reliable" if reliable else "best-effort"
        print(
            f"\nrequest/reply via reference node ({mode}): "
            f"p50 {ms[25]:.2f} ms, p90 {ms[45]:.2f} ms, max {ms[-1]:.2f} ms"
        )


# ---------------------------------------------------------------------------------------------
# groups (no MLS): our moderator with reference members, and a reference moderator with ours


@pytest.mark.parametrize("mls", [False, True], ids=["plain", "mls"])
async def test_our_moderator_reference_members(node: NodeInfo, mls: bool) -> None:
    me = f"org/ns/{unique('mod')}"
    members = [f"org/ns/{unique('refp')}" for _ in range(2)]
    async with contextlib.AsyncExitStack() as stack:
        refs = [
            await stack.enter_async_context(
                ref_app(
                    node,
                    "group-participant",
                    p,
                    ("--moderator", me, *(("--mls",) if mls else ())),
                )
            )
            for p in members
        ]
        for ref in refs:
            await asyncio.wait_for(ref.ready.wait(), 20)
        async with our_app(node, me) as app:
            session = app.create_group("org/ns/chat", reliable=True, mls=mls)
            for p in members:
                joined = await session.invite(p, timeout=TIMEOUT)
                assert joined.short().startswith(p)
            assert len(session.participants) == 3
            await session.publish(f"start from {me}", payload_type=PAYLOAD_TYPE, wait=True)
            phase1 = {(await session.receive(timeout=TIMEOUT)).text for _ in members}
            assert phase1 == {f"phase1 from {p}" for p in members}
            await session.remove(members[0], timeout=TIMEOUT)
            assert len(session.participants) == 2
            await session.publish(f"phase2 from {me}", payload_type=PAYLOAD_TYPE, wait=True)
            assert (await session.receive(timeout=TIMEOUT)).text == f"phase2 from {members[1]}"
            await session.close()
            assert session.closed
        for ref in refs:
            await asyncio.wait_for(ref.done.wait(), 30)
    removed, kept = (r.result() for r in refs)
    assert removed.ok, removed.explain()
    assert kept.ok, kept.explain()
    assert removed["closed"]
    assert kept["closed"]
    assert set(removed["phase1"]) == {me, members[1]}  # every member heard every other member
    assert set(kept["phase1"]) == {me, members[0]}
    assert set(kept["phase2"]) == {me}
    assert removed["phase2"] == {}  # removed before phase 2


@pytest.mark.parametrize("mls", [False, True], ids=["plain", "mls"])
async def test_reference_moderator_our_members(node: NodeInfo, mls: bool) -> None:
    moderator = f"org/ns/{unique('refmod')}"
    members = [f"org/ns/{unique('p')}" for _ in range(2)]

    async def member(app: App) -> list[str]:
        me = app.name.without_id().short()
        session = await app.accept(timeout=20)
        seen = []
        async for msg in session:  # ends when the group is closed for us
            seen.append(msg.text)
            if msg.text.startswith("start from "):
                await session.publish(f"phase1 from {me}", payload_type=PAYLOAD_TYPE, wait=True)
            elif msg.text == f"phase2 from {moderator}":
                try:
                    await session.publish(f"phase2 from {me}", payload_type=PAYLOAD_TYPE, wait=True)
                except DeliveryFailed:
                    # The moderator closes the group as soon as it holds every phase-2
                    # message, which can cut off the other members' last acks: then (only
                    # then) the wait fails. Delivery itself is checked below, in what the
                    # moderator and the reference participant report.
                    assert session.closed
        assert session.closed
        return seen

    refp = f"org/ns/{unique('refp')}"  # and one reference participant beside ours
    mls_flag = ("--mls",) if mls else ()
    async with (
        our_app(node, members[0]) as a,
        our_app(node, members[1]) as b,
        ref_app(node, "group-participant", refp, ("--moderator", moderator, *mls_flag)) as theirs,
    ):
        await asyncio.wait_for(theirs.ready.wait(), 20)
        tasks = [asyncio.create_task(member(x)) for x in (a, b)]
        invite = ",".join([*members, refp])
        flags = ("--invite", invite, "--remove", members[0], "--reliable", *mls_flag)
        async with ref_app(node, "group-moderator", moderator, flags) as ref:
            seen_a, seen_b = await asyncio.wait_for(asyncio.gather(*tasks), 45)
            await asyncio.wait_for(ref.done.wait(), 30)
        await asyncio.wait_for(theirs.done.wait(), 30)
    result = ref.result()
    assert result.ok, result.explain()
    assert set(result["phase1"]) == {*members, refp}
    assert set(result["phase2"]) == {members[1], refp}
    # the removed member heard everyone before its removal and nothing after
    assert sorted(seen_a) == sorted(
        [f"start from {moderator}", f"phase1 from {members[1]}", f"phase1 from {refp}"]
    )
    assert set(seen_b) == {
        f"start from {moderator}",
        f"phase1 from {members[0]}",
        f"phase1 from {refp}",
        f"phase2 from {moderator}",
        f"phase2 from {refp}",
    }
    other = theirs.result()
    assert other.ok, other.explain()
    assert other["closed"]  # close ends the session for every member
    assert set(other["phase1"]) == {moderator, *members}
    assert set(other["phase2"]) == {moderator, members[1]}
