"""A reference group member (slim-bindings) that soft-closes and rejoins, for interop tests.

Runs as a subprocess like ``tests/interop/_ref_app.py`` (and reuses its plumbing): role
``group-soft-rejoin`` joins the group it is invited to, waits for ``soft``, calls
``close_with_mode(SOFT)``, stays away a few seconds, calls ``rejoin()``, publishes
``back from <name>`` and reports the next message it receives. Role
``group-moderator-presence`` is the reference moderator for our members doing the same.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import slim_bindings as slim

from tests.interop import _ref_app as base

AWAY_SECONDS = 4.0


async def _wait(handle: Any, deadline: base.Deadline, cap: float) -> str:
    try:
        await handle.wait_for_async(deadline.td(cap))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


async def soft_rejoin(
    args: argparse.Namespace, deadline: base.Deadline, report: dict[str, Any]
) -> bool:
    _service, app, _conn_id = await base.connect(args)
    base.emit("ready", name=args.name, app_id=app.id())
    session = await app.listen_for_session_async(deadline.td())
    got = base.describe(await base.next_message(session, deadline))
    base.expect(got, "soft", "before the soft close")
    handle = await session.close_with_mode_async(slim.CloseMode.SOFT)
    report["soft"] = await _wait(handle, deadline, 10)
    await asyncio.sleep(AWAY_SECONDS)
    handle = await session.rejoin_async()
    report["rejoin"] = await _wait(handle, deadline, 15)
    me = args.name
    handle = await session.publish_async(f"back from {me}".encode(), base.PAYLOAD_TYPE, None)
    after = base.describe(await base.next_message(session, deadline))
    report["after"] = after["payload"]
    report["after_source"] = after["source"]
    report["ok_rejoin"] = report["rejoin"] == "ok"
    return bool(report["ok_rejoin"])


async def moderator_presence(
    args: argparse.Namespace, deadline: base.Deadline, report: dict[str, Any]
) -> bool:
    """Moderate a group of ``--invite`` members; tell the first ``soft``; once it shows as
    OFFLINE in the participant list, invite ``--remove`` (here: the late member, a new MLS
    epoch); then wait for ``back from <first>`` and answer ``after``."""
    _service, app, conn_id = await base.connect(args)
    base.emit("ready", name=args.name, app_id=app.id())
    members = [p for p in args.invite.split(",") if p]
    late = args.remove
    session = await app.create_session_and_wait_async(
        base.session_config(args, slim.SessionType.GROUP), base.parse_name(args.channel)
    )
    for p in members:
        await app.set_route_async(base.parse_name(p), conn_id)
        await asyncio.wait_for(session.invite_and_wait_async(base.parse_name(p)), deadline.left())
    handle = await session.publish_async(b"soft", base.PAYLOAD_TYPE, None)
    report["soft_sent"] = await _wait(handle, deadline, 10)
    away = members[0]
    report["saw_offline"] = False
    while not deadline.expired():
        listed = await session.participants_list_async()
        if any(
            base.name_str(i.name) == away and i.status == slim.ParticipantStatus.OFFLINE
            for i in listed
        ):
            report["saw_offline"] = True
            break
        await asyncio.sleep(0.1)
    await app.set_route_async(base.parse_name(late), conn_id)
    await asyncio.wait_for(session.invite_and_wait_async(base.parse_name(late)), deadline.left())
    got = base.describe(await base.next_message(session, deadline))
    report["back"] = got["payload"]
    handle = await session.publish_async(b"after", base.PAYLOAD_TYPE, None)
    report["after_sent"] = await _wait(handle, deadline, 10)
    await asyncio.sleep(1.0)
    closing = await app.delete_session_async(session)
    await closing.wait_for_async(deadline.td(5.0))
    return bool(report["saw_offline"]) and report["back"] == f"back from {away}"


base.ROLES["group-soft-rejoin"] = soft_rejoin
base.ROLES["group-moderator-presence"] = moderator_presence

if __name__ == "__main__":
    base.main()
