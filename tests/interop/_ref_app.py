"""One reference SLIM app (``slim-bindings``) playing one scenario role, as a subprocess.

The reference's Rust runtime is global per process, so every app of a scenario runs in its own
process: this script. It is driven by ``tests/interop/_harness.py`` and speaks JSON lines on
stdout: ``{"event": "ready", ...}`` once the app is connected and subscribed (so the harness can
start the peers that need it), then exactly one ``{"event": "result", "ok": ..., ...}`` line.
Everything has a deadline (``--timeout``): the process always ends by itself, reporting what it
saw so far when something does not arrive.

Roles (``--role``):

``p2p-initiator`` / ``p2p-responder``
    A point-to-point session, MLS on or off (``--mls``), reliable or not (``--reliable``).
    ``--direction forward``: the initiator sends K requests one at a time and waits for each echo;
    the responder echoes with ``publish_to``. ``--direction reverse``: the responder sends K
    requests with ``publish_and_wait`` and the initiator echoes them. Afterwards the initiator
    deletes the session and the responder checks it is told (``session closed``).
``p2p-pipeline``
    An initiator that publishes K messages (``pipe-<i>``) without waiting, then waits for every
    completion handle (``acked``: how many resolved; reliable, each needs an MSG_ACK of its own
    id) and deletes the session.
``group-moderator`` / ``group-participant``
    A group session with MLS. The moderator creates the channel, invites the participants, and
    publishes ``start``; each participant answers every ``start``/``phase2`` with its own message.
    Every member must receive one message from every other member. The moderator then removes
    one participant (which must be told: ``session closed``), publishes ``phase2`` and waits for
    the answers of the remaining participants, then closes the group.

This file is a script, not a module of the package: it only imports ``slim_bindings``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import sys
import time
import traceback
from typing import IO, Any

import slim_bindings as slim

# Where our JSON lines go; ``main`` points it at the real stdout and moves fd 1 (where the Rust
# runtime logs) to stderr. Importing this file (for its constants) has no such side effect.
_JSON_OUT: list[IO[str]] = [sys.stdout]


def _split_stdout() -> None:
    _JSON_OUT[0] = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)


DEFAULT_SECRET = "slimwire-interop-shared-secret-0123456789abcdef"
PAYLOAD_TYPE = "interop"


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stdout (the harness's only channel), flushed at once."""
    _JSON_OUT[0].write(json.dumps({"event": event, **fields}, sort_keys=True) + "\n")
    _JSON_OUT[0].flush()


def parse_name(text: str) -> slim.Name:
    return slim.Name.from_string(text)


def name_str(name: Any) -> str:
    """``org/ns/svc`` of a reference ``Name`` (the id is left out: it is random per app)."""
    if name is None:
        return ""
    return "/".join(name.components())


class Deadline:
    """The role's overall time budget: every wait takes what is left of it."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self, cap: float | None = None) -> float:
        rest = max(0.05, self.end - time.monotonic())
        return rest if cap is None else min(rest, cap)

    def td(self, cap: float | None = None) -> datetime.timedelta:
        return datetime.timedelta(seconds=self.left(cap))

    def expired(self) -> bool:
        return time.monotonic() >= self.end


def session_config(args: argparse.Namespace, kind: slim.SessionType) -> slim.SessionConfig:
    """MLS is on iff ``mls_settings`` is set; reliability needs both retries and interval."""
    mls = (
        slim.MlsSettings(
            header_integrity_validation_percent=100, max_seen_control_message_ids_size=None
        )
        if args.mls
        else None
    )
    reliable = args.reliable
    return slim.SessionConfig(
        session_type=kind,
        max_retries=10 if reliable else None,
        interval=datetime.timedelta(milliseconds=500) if reliable else None,
        metadata={"interop": "1"},
        mls_settings=mls,
    )


async def connect(args: argparse.Namespace) -> tuple[Any, Any, int]:
    """Initialise the runtime, create the app (shared-secret identity), connect and subscribe."""
    tracing = slim.new_tracing_config()
    tracing.log_level = args.log_level
    slim.initialize_with_configs(
        runtime_config=slim.new_runtime_config(),
        tracing_config=tracing,
        service_config=[slim.new_service_config()],
    )
    service = slim.get_global_service()
    # the blocking constructor: create_app_with_secret_async panics (no Tokio reactor) in 3.3.8
    app = service.create_app_with_secret(parse_name(args.name), args.secret)
    conn_id = await service.connect_async(slim.new_insecure_client_config(args.endpoint))
    await app.subscribe_async(app.name(), conn_id)
    return service, app, conn_id


async def next_message(session: Any, deadline: Deadline) -> Any:
    return await session.get_message_async(deadline.td())


async def wait_closed(session: Any, deadline: Deadline, cap: float) -> tuple[bool, str, int]:
    """Drain the session until the reference reports it closed; returns (closed, error, extra)."""
    extra = 0
    end = Deadline(min(cap, deadline.left()))
    while not end.expired():
        try:
            await session.get_message_async(end.td())
            extra += 1
        except Exception as exc:
            text = str(exc)
            if "closed" in text.lower():
                return True, text, extra
            if end.expired():
                return False, text, extra
    return False, "timeout", extra


def describe(msg: Any) -> dict[str, Any]:
    ctx = msg.context
    return {
        "payload": bytes(msg.payload).decode("utf-8", "replace"),
        "source": name_str(ctx.source_name),
        "payload_type": ctx.payload_type,
        "metadata": dict(ctx.metadata),
    }


class Mismatch(Exception):
    """A message arrived, but not the one the scenario expects."""


def expect(got: dict[str, Any], want: str, what: str) -> None:
    if got["payload"] != want:
        raise Mismatch(f"{what}: {got['payload']!r} != {want!r}")


def is_closed(exc: BaseException) -> bool:
    return "closed" in str(exc).lower()


# ---------------------------------------------------------------------------------------------
# point-to-point
#
# Each role fills ``report`` as it goes, so a failure still reports everything seen until then.


async def p2p_initiator(
    args: argparse.Namespace, deadline: Deadline, report: dict[str, Any]
) -> bool:
    _service, app, _conn_id = await connect(args)
    emit("ready", name=args.name, app_id=app.id())
    t0 = time.monotonic()
    kind = slim.SessionType.POINT_TO_POINT
    created = await app.create_session_async(session_config(args, kind), parse_name(args.peer))
    await created.completion.wait_for_async(deadline.td())
    session = created.session
    report["setup_ms"] = round((time.monotonic() - t0) * 1000, 1)
    replies: list[dict[str, Any]] = []
    report["replies"] = replies
    for i in range(args.count):
        request = f"req-{i}-{args.nonce}"
        if args.direction == "forward":
            handle = await session.publish_async(request.encode(), PAYLOAD_TYPE, {"seq": str(i)})
            await handle.wait_for_async(deadline.td())
            replies.append(describe(await next_message(session, deadline)))
            expect(replies[-1], f"echo:{request}", f"reply {i}")
        else:
            msg = await next_message(session, deadline)
            replies.append(describe(msg))
            expect(replies[-1], request, f"request {i}")
            handle = await session.publish_to_async(
                msg.context, f"echo:{request}".encode(), PAYLOAD_TYPE, {"seq": str(i)}
            )
            await handle.wait_for_async(deadline.td())
    closing = await app.delete_session_async(session)
    await closing.wait_for_async(deadline.td(5.0))
    return True


async def p2p_responder(
    args: argparse.Namespace, deadline: Deadline, report: dict[str, Any]
) -> bool:
    _service, app, _conn_id = await connect(args)
    emit("ready", name=args.name, app_id=app.id())
    session = await app.listen_for_session_async(deadline.td())
    report["session_metadata"] = dict(session.metadata())
    report["session_source"] = name_str(session.source())
    received: list[dict[str, Any]] = []
    report["received"] = received
    for i in range(args.count):
        request = f"req-{i}-{args.nonce}"
        if args.direction == "forward":
            msg = await next_message(session, deadline)
            received.append(describe(msg))
            expect(received[-1], request, f"request {i}")
            handle = await session.publish_to_async(
                msg.context, f"echo:{request}".encode(), PAYLOAD_TYPE, {"seq": str(i)}
            )
            await handle.wait_for_async(deadline.td())
        else:
            await asyncio.wait_for(
                session.publish_and_wait_async(request.encode(), PAYLOAD_TYPE, {"seq": str(i)}),
                deadline.left(),
            )
            received.append(describe(await next_message(session, deadline)))
            expect(received[-1], f"echo:{request}", f"reply {i}")
    closed, error, extra = await wait_closed(session, deadline, cap=15.0)
    report.update(closed_by_peer=closed, close_error=error, extra_messages=extra)
    if not closed:
        report["error"] = f"not told that the session closed: {error}"
    return closed


# ---------------------------------------------------------------------------------------------
# group


async def collect(
    session: Any, deadline: Deadline, prefix: str, senders: set[str], into: dict[str, str]
) -> None:
    """Receive until a ``<prefix><sender>`` message from every one of ``senders`` arrived."""
    while not senders <= set(into):
        got = describe(await next_message(session, deadline))
        if got["payload"].startswith(prefix):
            into[got["payload"].removeprefix(prefix)] = got["source"]


async def group_moderator(
    args: argparse.Namespace, deadline: Deadline, report: dict[str, Any]
) -> bool:
    _service, app, conn_id = await connect(args)
    emit("ready", name=args.name, app_id=app.id())
    participants = [p for p in args.invite.split(",") if p]
    me = args.name
    kind = slim.SessionType.GROUP
    session = await app.create_session_and_wait_async(
        session_config(args, kind), parse_name(args.channel)
    )
    invited: list[dict[str, Any]] = []
    report["invited"] = invited
    for p in participants:
        # the moderator needs a route to each invitee before inviting it
        await app.set_route_async(parse_name(p), conn_id)
        t0 = time.monotonic()
        await asyncio.wait_for(session.invite_and_wait_async(parse_name(p)), deadline.left())
        invited.append({"name": p, "ms": round((time.monotonic() - t0) * 1000, 1)})
    handle = await session.publish_async(f"start from {me}".encode(), PAYLOAD_TYPE, None)
    await handle.wait_for_async(deadline.td())

    phase1: dict[str, str] = {}
    report["phase1"] = phase1
    await collect(session, deadline, "phase1 from ", set(participants), phase1)
    removed = args.remove
    report["removed"] = removed
    if removed:
        t0 = time.monotonic()
        await asyncio.wait_for(session.remove_and_wait_async(parse_name(removed)), deadline.left())
        report["remove_ms"] = round((time.monotonic() - t0) * 1000, 1)
        members = await session.participants_list_async()
        report["members_after_remove"] = sorted(name_str(m.name) for m in members)
    remaining = {p for p in participants if p != removed}
    handle = await session.publish_async(f"phase2 from {me}".encode(), PAYLOAD_TYPE, None)
    await handle.wait_for_async(deadline.td())
    phase2: dict[str, str] = {}
    report["phase2"] = phase2
    await collect(session, deadline, "phase2 from ", remaining, phase2)
    closing = await app.delete_session_async(session)
    await closing.wait_for_async(deadline.td(5.0))
    return True


async def track_ack(handle: Any, label: str, acks: dict[str, str], deadline: Deadline) -> None:
    """Record how a publish's completion handle ends: "acked", or the reference's error."""
    try:
        await handle.wait_for_async(deadline.td())
        acks[label] = "acked"
    except Exception as exc:
        acks[label] = f"{type(exc).__name__}: {exc}"


async def group_participant(
    args: argparse.Namespace, deadline: Deadline, report: dict[str, Any]
) -> bool:
    """Answer the moderator's ``start`` and ``phase2``; record every message until the group is
    closed for us (removal, or the moderator closing it).

    Our own publishes' completion (all members' MSG_ACKs) is tracked beside the receive loop, not
    awaited in it: the reference never completes a group publish whose receiver is removed
    before its MSG_ACK reaches us (observed: the last phase-1 sender's handle hung for the whole
    30 s when the moderator removed p0 right after that message), and a blocked loop would stop
    reading the group. How each handle ended is reported under ``acks``."""
    _service, app, _conn_id = await connect(args)
    emit("ready", name=args.name, app_id=app.id())
    session = await app.listen_for_session_async(deadline.td())
    me = args.name
    report["channel"] = name_str(session.destination())
    phase1: dict[str, str] = {}
    phase2: dict[str, str] = {}
    acks: dict[str, str] = {}
    report.update(phase1=phase1, phase2=phase2, closed=False, acks=acks)
    trackers: list[asyncio.Task[None]] = []
    try:
        while True:
            try:
                got = describe(await next_message(session, deadline))
            except Exception as exc:
                if is_closed(exc):
                    report.update(closed=True, close_error=str(exc))
                    return True
                raise
            text = got["payload"]
            answer = None
            if text.startswith("start from "):
                phase1[text.removeprefix("start from ")] = got["source"]
                answer = "phase1"
            elif text.startswith("phase1 from "):
                phase1[text.removeprefix("phase1 from ")] = got["source"]
            elif text.startswith("phase2 from "):
                sender = text.removeprefix("phase2 from ")
                phase2[sender] = got["source"]
                if sender == args.moderator:
                    answer = "phase2"
            if answer is not None:
                payload = f"{answer} from {me}".encode()
                handle = await session.publish_async(payload, PAYLOAD_TYPE, None)
                acks[answer] = "pending"
                trackers.append(asyncio.create_task(track_ack(handle, answer, acks, deadline)))
    finally:
        # give outstanding acks a moment, then report them as they are
        if trackers:
            await asyncio.wait(trackers, timeout=min(2.0, deadline.left()))
        for task in trackers:
            task.cancel()


async def p2p_pipeline(
    args: argparse.Namespace, deadline: Deadline, report: dict[str, Any]
) -> bool:
    """Initiator: publish ``--count`` messages without waiting, then wait for every one's
    completion handle (reliable: each resolves only on an MSG_ACK of its own id), then close."""
    _service, app, _conn_id = await connect(args)
    emit("ready", name=args.name, app_id=app.id())
    kind = slim.SessionType.POINT_TO_POINT
    created = await app.create_session_async(session_config(args, kind), parse_name(args.peer))
    await created.completion.wait_for_async(deadline.td())
    session = created.session
    handles = [
        await session.publish_async(f"pipe-{i}".encode(), PAYLOAD_TYPE, None)
        for i in range(args.count)
    ]
    acks: dict[str, str] = {}
    for i, handle in enumerate(handles):
        await track_ack(handle, str(i), acks, deadline)
    report["acked"] = sum(outcome == "acked" for outcome in acks.values())
    report["outcomes"] = sorted(set(acks.values()))
    closing = await app.delete_session_async(session)
    await closing.wait_for_async(deadline.td(5.0))
    return report["acked"] == args.count


ROLES = {
    "p2p-initiator": p2p_initiator,
    "p2p-pipeline": p2p_pipeline,
    "p2p-responder": p2p_responder,
    "group-moderator": group_moderator,
    "group-participant": group_participant,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--role", required=True, choices=sorted(ROLES))
    p.add_argument("--endpoint", required=True, help="node to connect to, http://127.0.0.1:PORT")
    p.add_argument("--name", required=True, help="this app's name, org/ns/svc")
    p.add_argument("--secret", default=DEFAULT_SECRET, help="shared secret (>= 32 bytes)")
    p.add_argument("--timeout", type=float, default=30.0, help="overall deadline, seconds")
    p.add_argument("--log-level", default="error")
    p.add_argument("--mls", action="store_true")
    p.add_argument("--reliable", action="store_true")
    p.add_argument("--peer", default="", help="p2p: the responder's name")
    p.add_argument("--count", type=int, default=5, help="p2p: request/reply rounds")
    p.add_argument("--direction", choices=("forward", "reverse"), default="forward")
    p.add_argument("--nonce", default="0", help="p2p: mixed into payloads (same on both sides)")
    p.add_argument("--channel", default="org/ns/chat", help="group: the channel name")
    p.add_argument("--invite", default="", help="group moderator: comma-separated names")
    p.add_argument("--remove", default="", help="group moderator: the participant to remove")
    p.add_argument("--moderator", default="", help="group participant: the moderator's name")
    return p


EXIT_LINGER = 0.2  # seconds the runtime gets to send what it still queues before we exit


async def amain(args: argparse.Namespace) -> int:
    deadline = Deadline(args.timeout)
    report: dict[str, Any] = {}
    try:
        ok = await asyncio.wait_for(ROLES[args.role](args, deadline, report), args.timeout + 1.0)
        # The reference answers a peer's close (the ack its deleting peer waits for) from its own
        # runtime threads, after telling us the session closed: leaving at once (os._exit below)
        # could kill that ack in its queue and fail the peer's delete, so let it go out first.
        await asyncio.sleep(EXIT_LINGER)
    except Exception as exc:  # report every failure, including timeouts, with what was seen
        ok = False
        report["error"] = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, Mismatch | TimeoutError):
            report["traceback"] = traceback.format_exc(limit=3)[-1500:]
    emit("result", role=args.role, name=args.name, **report, ok=ok)
    return 0 if ok else 1


def main() -> int:
    args = build_parser().parse_args()
    _split_stdout()
    code = asyncio.run(amain(args))
    _JSON_OUT[0].flush()
    # the reference runtime's background threads may keep the interpreter alive: leave now
    os._exit(code)


if __name__ == "__main__":
    main()
