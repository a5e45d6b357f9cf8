"""The forwarder's traced path: routing a batch that may hold messages with a ``traceparent``.

Only used when the node has a tracer (``tracing.opentelemetry.enabled``); otherwise the
forwarder never calls in here. A batch is scanned for the bytes ``traceparent`` (a C-level
search); runs of messages without it are routed as one batch, as usual, and each message with
it is routed alone between :meth:`MessageTracer.begin` and :meth:`MessageTracer.end`, so its
span can say exactly where it went (the connections whose queues grew) or why it was dropped
(the drop counter of the incoming link that moved). The tracer lives in ``slimwire.tracing``;
this layer only knows the two calls below.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ._connections import Conn
from ._types import ConnState

__all__ = ["MessageTracer", "TracedPath"]

_MARK = b"traceparent"


class MessageTracer(Protocol):
    """What the forwarder asks of a tracer (``slimwire.tracing.NodeTracer``)."""

    def begin(self, raw: bytes, conn_id: int, link_id: str = "") -> tuple[bytes, Any] | None:
        """None: not traced; else the bytes to route instead and a handle for ``end``."""

    def end(self, span: Any, out_conns: Sequence[int], drop: str | None) -> None:
        """The message went to ``out_conns`` (empty when dropped, with ``drop`` the reason)."""


class TracedPath:
    """``_receive_traced`` over the forwarder's queues and routing loop."""

    tracer: MessageTracer | None
    _dirty: list[Conn]

    def _route(self, conn: Conn, batch: list[bytes]) -> None:  # pragma: no cover - forwarder's
        raise NotImplementedError

    def _receive_traced(self, conn: Conn, batch: list[bytes]) -> None:
        tracer = self.tracer
        assert tracer is not None
        start = 0
        for i, raw in enumerate(batch):
            if _MARK not in raw:
                continue
            if start < i:
                self._route(conn, batch[start:i])
                if conn.state is not ConnState.UP:
                    return
            start = i + 1
            traced = tracer.begin(raw, conn.conn_id, conn.link_id)
            if traced is None:
                self._route(conn, [raw])
            else:
                routed, span = traced
                drops = dict(conn.drops)
                queued = {id(c): len(c.out) for c in self._dirty}
                self._route(conn, [routed])
                outs = [c.conn_id for c in self._dirty if len(c.out) > queued.get(id(c), 0)]
                drop = next((r.value for r, n in conn.drops.items() if n > drops.get(r, 0)), None)
                tracer.end(span, outs, drop)
            if conn.state is not ConnState.UP:
                return
        if start < len(batch):
            self._route(conn, batch[start:])
