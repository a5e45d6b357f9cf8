"""The asyncio client: connect an app to a node and talk to other apps over sessions.

    async with await connect("http://127.0.0.1:46357", name="org/ns/alice", secret=S) as app:
        async with await app.open_session("org/ns/bob", reliable=True) as session:
            await session.publish(b"hello")
            reply = await session.receive(timeout=5)

A peer's sessions arrive with ``await app.accept()``; every received message can be answered
with ``await msg.reply(...)``.
"""

from slimwire.client._app import App, connect
from slimwire.client._session import Message, Session

__all__ = ["App", "Message", "Session", "connect"]
