"""``slimwire group``: moderate a group session from the shell.

Creates the group on ``--channel`` with this app as moderator, invites every ``--invite``
member one after the other (each invite waits until the member joined, so a name nobody
answers to fails the command instead of leaving a half-made group), publishes each MESSAGE to
the whole group, then prints what the other members send until ``--count`` payloads arrived.
Leaving closes the group for every member.
"""

from __future__ import annotations

import argparse

from slimwire.cli._app_common import (
    add_common_arguments,
    connect_app,
    emit_payload,
    parse_name,
    run_command,
    status,
)
from slimwire.errors import ConfigError, SessionClosed, SessionError, SlimwireTimeout

HELP = "create a group session, invite members, publish, print what members send"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)
    p.add_argument("--channel", metavar="ORG/NS/SVC", required=True, help="the group's name")
    p.add_argument(
        "--invite",
        metavar="NAME",
        action="append",
        default=[],
        required=True,
        help="a member to invite (repeatable)",
    )
    p.add_argument("--mls", action="store_true", help="end-to-end encrypt the group with MLS")
    p.add_argument("--reliable", action="store_true", help="acknowledged delivery to every member")
    p.add_argument(
        "--count",
        type=int,
        default=0,
        metavar="N",
        help="after publishing, print members' payloads until N arrived (default 0)",
    )
    p.add_argument("message", nargs="*", metavar="MESSAGE", help="payloads to publish to the group")


def run(args: argparse.Namespace) -> int:
    return run_command("slimwire group", args, _main)


async def _main(args: argparse.Namespace) -> int:
    channel = parse_name(args.channel, "--channel")
    members = [parse_name(text, "--invite") for text in args.invite]
    if args.count < 0:
        raise ConfigError("--count must not be negative")
    app = await connect_app(args)
    try:
        group = app.create_group(channel, reliable=args.reliable, mls=args.mls)
        try:
            status(f"ready: group {args.channel} created as {app.name}")
            for text, member in zip(args.invite, members, strict=True):
                try:
                    joined = await group.invite(member, timeout=args.timeout)
                except SlimwireTimeout:
                    raise SlimwireTimeout(
                        f"inviting {text}: no answer in {args.timeout:g}s "
                        "(is it running and connected?)"
                    ) from None
                except SessionError as exc:
                    raise SessionError(f"inviting {text}: {exc}") from None
                status(f"{joined} joined")
            for text in args.message:
                await group.publish(text.encode(), wait=args.reliable, timeout=args.timeout)
            if args.message:
                status(f"published {len(args.message)} message(s)")
            for got in range(args.count):
                try:
                    msg = await group.receive(timeout=args.timeout)
                except SlimwireTimeout:
                    raise SlimwireTimeout(
                        f"received {got} of {args.count} message(s): none for {args.timeout:g}s"
                    ) from None
                except SessionClosed as exc:
                    raise SessionClosed(
                        f"received {got} of {args.count} message(s): {exc}"
                    ) from None
                emit_payload(msg.payload)
        finally:
            await group.close(timeout=args.timeout)
        status("group closed")
        return 0
    finally:
        await app.close()
