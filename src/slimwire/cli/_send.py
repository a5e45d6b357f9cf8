"""``slimwire send``: open a point-to-point session, send messages, optionally print replies.

Each MESSAGE (or, with none given, each line of stdin) is one publish. With ``--expect-reply``
the command waits for one reply per message before sending the next, so replies pair with
requests and a responder that stops answering is noticed at once (``--timeout``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from slimwire.cli._app_common import (
    add_common_arguments,
    connect_app,
    emit_payload,
    parse_name,
    run_command,
    status,
)
from slimwire.errors import SessionClosed, SessionError, SlimwireTimeout

HELP = "send messages to an app over a point-to-point session"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)
    p.add_argument("--to", metavar="ORG/NS/SVC", required=True, help="the peer app's name")
    p.add_argument("--mls", action="store_true", help="end-to-end encrypt the session with MLS")
    p.add_argument(
        "--reliable",
        action="store_true",
        help="acknowledged delivery with retransmission; each send waits for its ack",
    )
    p.add_argument(
        "--expect-reply",
        action="store_true",
        help="wait for one reply per message and print it on stdout",
    )
    p.add_argument("message", nargs="*", metavar="MESSAGE", help="payloads (default: stdin lines)")


def run(args: argparse.Namespace) -> int:
    return run_command("slimwire send", args, _main)


def _messages(args: argparse.Namespace) -> Iterator[bytes]:
    if args.message:
        for text in args.message:
            yield text.encode()
        return
    for line in sys.stdin.buffer:
        yield line.rstrip(b"\r\n")


async def _main(args: argparse.Namespace) -> int:
    peer = parse_name(args.to, "--to")
    app = await connect_app(args)
    try:
        try:
            session = await app.open_session(
                peer, reliable=args.reliable, mls=args.mls, timeout=args.timeout
            )
        except SlimwireTimeout:
            raise SlimwireTimeout(
                f"no session with {args.to}: it did not answer in {args.timeout:g}s "
                "(is it running and connected to this node?)"
            ) from None
        except SessionError as exc:
            raise SessionError(f"no session with {args.to}: {exc}") from None
        status(f"session {session.session_id} with {session.peer} open")
        sent = 0
        try:
            for payload in _messages(args):
                await session.publish(payload, wait=args.reliable, timeout=args.timeout)
                sent += 1
                if args.expect_reply:
                    try:
                        reply = await session.receive(timeout=args.timeout)
                    except SlimwireTimeout:
                        raise SlimwireTimeout(
                            f"no reply to message {sent} from {args.to} in {args.timeout:g}s"
                        ) from None
                    except SessionClosed as exc:
                        raise SessionClosed(
                            f"no reply to message {sent} from {args.to}: {exc}"
                        ) from None
                    emit_payload(reply.payload)
        finally:
            await session.close(timeout=args.timeout)
        status(f"sent {sent} message(s)")
        return 0
    finally:
        await app.close()
