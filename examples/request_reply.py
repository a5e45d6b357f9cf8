"""Request/reply over SLIM in one script: a node, a responder app and a requester app.

    python3 examples/request_reply.py [--reliable] [--requests N]

The node runs in this process on a free loopback port (in a real deployment it is
``slimwire node`` or the reference ``slim`` binary). The responder accepts sessions and answers
every request; the requester opens a point-to-point session to the responder *by name*
(``org/example/responder``: no id, so the node picks any instance), sends requests and awaits
each answer. Both apps prove who they are with the same shared secret (>= 32 bytes), as
reference apps do. The script prints one line per answer and exits 0 when every answer arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from slimwire.client import App, Session, connect
from slimwire.dataplane import run_node
from slimwire.errors import SessionClosed

SECRET = "example-shared-secret-at-least-32-bytes-long"
RESPONDER = "org/example/responder"
REQUESTER = "org/example/requester"


async def serve(app: App) -> None:
    """Answer every request of every session, each session in its own task."""

    async def answer(session: Session) -> None:
        async for request in session:  # ends when the requester closes the session
            await request.reply(f"{request.text.upper()} (from {app.name.service})")

    tasks: set[asyncio.Task[None]] = set()
    async for session in app.incoming():
        task = asyncio.create_task(answer(session))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def main(reliable: bool, requests: int) -> int:
    async with run_node() as node:
        responder = await connect(node.url, name=RESPONDER, secret=SECRET)
        requester = await connect(node.url, name=REQUESTER, secret=SECRET)
        server = asyncio.create_task(serve(responder))
        answered = 0
        try:
            async with requester.open_session(RESPONDER, reliable=reliable) as session:
                for i in range(requests):
                    await session.publish(f"request {i}")
                    try:
                        reply = await session.receive(timeout=5)
                    except SessionClosed:
                        break
                    print(f"request {i} -> {reply.text}", flush=True)
                    answered += 1
        finally:
            server.cancel()
            await requester.close()
            await responder.close()
    return 0 if answered == requests else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reliable", action="store_true", help="acknowledged delivery")
    parser.add_argument("--requests", type=int, default=3)
    options = parser.parse_args()
    sys.exit(asyncio.run(main(options.reliable, options.requests)))
