"""A reference group member (slim-bindings) that soft-closes and rejoins, for interop tests.

Runs as a subprocess like ``tests/interop/_ref_app.py`` (and reuses its plumbing): role
``group-soft-rejoin`` joins the group it is invited to, waits for ``soft``, calls
``close_with_mode(SOFT)``, stays away ``--away`` seconds, calls ``rejoin()``, publishes
``back from <name>`` and reports the next message it receives.
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


base.ROLES["group-soft-rejoin"] = soft_rejoin

if __name__ == "__main__":
    base.main()
