"""``slimwire listen``: accept sessions and print every payload; optionally echo it back.

Every session a peer opens to us (point-to-point, or a group invitation once the client offers
them) is read concurrently; payloads from all of them go to stdout in arrival order. ``ready``
goes to stderr only once the app is subscribed at the node, so a script can start the sender
as soon as it sees that line. With ``--echo`` each payload is answered to its sender only
(``reply``, which in a group is a publish to that one member).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from typing import Any

from slimwire.cli._app_common import add_common_arguments, connect_app, emit_payload, run_command
from slimwire.cli._app_common import status as _status
from slimwire.errors import ConfigError, SessionError, SlimwireError, SlimwireTimeout

HELP = "accept sessions and print the payloads they carry"

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)
    p.add_argument(
        "--count", type=int, default=None, metavar="N", help="exit after N messages (default: run)"
    )
    p.add_argument("--echo", action="store_true", help="reply each payload back to its sender")
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="fail if no message arrives for this long (default: wait for ever)",
    )


def run(args: argparse.Namespace) -> int:
    return run_command("slimwire listen", args, _main)


async def _read_session(session: Any, inbox: asyncio.Queue[Any]) -> None:
    """Forward one session's messages to the shared inbox until it closes."""
    try:
        async for msg in session:
            inbox.put_nowait(msg)
    except SlimwireError as exc:
        log.info("session %s ended: %s", session.session_id, exc)
    _status(f"session {session.session_id} with {session.peer} closed")


async def _accept_loop(
    app: Any, inbox: asyncio.Queue[Any], readers: set[asyncio.Task[None]]
) -> None:
    async for session in app.incoming():
        _status(f"session {session.session_id} from {session.peer} accepted")
        task = asyncio.create_task(_read_session(session, inbox))
        readers.add(task)
        task.add_done_callback(readers.discard)


async def _main(args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 1:
        raise ConfigError("--count must be at least 1")
    if args.idle_timeout is not None and not args.idle_timeout > 0:
        raise ConfigError("--idle-timeout must be positive")
    app = await connect_app(args)
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    readers: set[asyncio.Task[None]] = set()
    acceptor = asyncio.create_task(_accept_loop(app, inbox, readers))
    received = 0
    try:
        _status(f"ready: listening as {app.name} on {args.endpoint}")
        while args.count is None or received < args.count:
            try:
                async with asyncio.timeout(args.idle_timeout):
                    msg = await inbox.get()
            except TimeoutError:
                raise SlimwireTimeout(
                    f"no message in {args.idle_timeout:g}s (received {received})"
                ) from None
            emit_payload(msg.payload)
            received += 1
            if args.echo:
                try:
                    await msg.reply(msg.payload, payload_type=msg.payload_type)
                except SessionError as exc:
                    _status(f"cannot echo to {msg.source}: {exc}")
        _status(f"received {received} message(s)")
        return 0
    finally:
        acceptor.cancel()
        for task in list(readers):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await acceptor
        await asyncio.gather(*readers, return_exceptions=True)
        await app.close()
