"""Automatic spans for a ``slimwire.client`` app: ``connect(..., tracing=True)``.

The app then makes, without code of its own, a PRODUCER span per publish (child of the span
current at the call; its context written into the message's metadata, so every traced node on
the way and the receiver hang under it) and a CONSUMER span per received message carrying a
``traceparent`` (child of the sender's span, or of the last traced node's), ended when the
message is queued for the app: the trace then shows the delivery even where the receiving code
adds no span. Code that wants its handling inside the trace still opens
:func:`~slimwire.tracing.consumer_span` over ``msg.metadata``.

Off by default, and then costs one ``is None`` test per message: the client asks for a
:class:`ClientTracer` only when tracing was requested.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from slimwire.tracing._app import _require_otel
from slimwire.tracing._traceparent import TRACEPARENT

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

__all__ = ["ClientTracer"]

_SYSTEM = "slim"


class ClientTracer:
    """The spans one app makes (see the module docstring). ``tracer`` defaults to the
    process-wide provider's tracer named ``slimwire``."""

    __slots__ = ("_consumer", "_producer", "_tracer", "app")

    def __init__(self, app: str, tracer: Tracer | None = None) -> None:
        _require_otel()
        from opentelemetry import trace

        self.app = app
        self._tracer = tracer if tracer is not None else trace.get_tracer("slimwire")
        self._producer = trace.SpanKind.PRODUCER
        self._consumer = trace.SpanKind.CONSUMER

    def __repr__(self) -> str:
        return f"ClientTracer({self.app!r})"

    def start_publish(
        self, destination: str, session_id: int, metadata: Mapping[str, str] | None
    ) -> tuple[Span, dict[str, str]]:
        """Start the PRODUCER span of one publish; returns it and the metadata to send (the
        caller's, copied, with the span's context injected). End it with :meth:`end_publish`."""
        from opentelemetry import propagate, trace

        span = self._tracer.start_span(
            "slim publish",
            kind=self._producer,
            attributes={
                "messaging.system": _SYSTEM,
                "messaging.operation.type": "send",
                "messaging.destination.name": destination,
                "slim.session_id": session_id,
                "slim.source": self.app,
            },
        )
        carried = dict(metadata) if metadata else {}
        propagate.inject(carried, context=trace.set_span_in_context(span))
        return span, carried

    @staticmethod
    def end_publish(span: Span, message_id: int | None) -> None:
        if message_id is not None:
            span.set_attribute("messaging.message.id", str(message_id))
        span.end()

    def received(
        self, source: str, session_id: int, message_id: int, metadata: Mapping[str, str]
    ) -> None:
        """Record the CONSUMER span of a message that carries a trace context (none
        otherwise: an untraced sender's messages start no traces here)."""
        if TRACEPARENT not in metadata:
            return
        from opentelemetry import propagate

        span = self._tracer.start_span(
            "slim receive",
            context=propagate.extract(metadata),
            kind=self._consumer,
            attributes={
                "messaging.system": _SYSTEM,
                "messaging.operation.type": "receive",
                "messaging.destination.name": self.app,
                "messaging.message.id": str(message_id),
                "slim.session_id": session_id,
                "slim.source": source,
            },
        )
        span.end()
