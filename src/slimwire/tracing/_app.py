"""What an app needs to carry a trace across SLIM: inject into / extract from metadata.

A SLIM message's ``metadata`` map plays the role of HTTP headers for W3C Trace Context: the
sender writes ``traceparent`` (and ``tracestate``/``baggage`` when present) from its current
span, every node on the way makes a child span and passes its own id on (as the reference's
``otel_tracing.rs`` does), and the receiver starts its consumer span from what arrives. These
functions use OpenTelemetry's global propagator (W3C trace context and baggage unless the app
configured another), imported only when called: slimwire itself runs without the ``[otel]``
extra.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from slimwire.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer
    from opentelemetry.util.types import AttributeValue

__all__ = ["consumer_span", "extract_context", "inject_traceparent", "publish_span"]

_INSTRUMENTATION = "slimwire"


def _require_otel() -> None:
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:  # pragma: no cover - the [otel] extra is in the test extras
        raise ConfigError("tracing needs OpenTelemetry: pip install 'slimwire[otel]'") from None


def inject_traceparent(metadata: MutableMapping[str, str], context: Context | None = None) -> None:
    """Write the trace context of ``context`` (default: the current one) into ``metadata``.

    Nothing is written when there is no valid span in that context, so an untraced app sends
    exactly what it sent before."""
    _require_otel()
    from opentelemetry import propagate

    propagate.inject(metadata, context=context)


def extract_context(metadata: Mapping[str, str]) -> Context:
    """The context carried by a received message's ``metadata`` (empty when none)."""
    _require_otel()
    from opentelemetry import propagate

    return propagate.extract(metadata)


def _tracer(tracer: Tracer | None) -> Tracer:
    if tracer is not None:
        return tracer
    from opentelemetry import trace

    return trace.get_tracer(_INSTRUMENTATION)


@contextmanager
def publish_span(
    metadata: MutableMapping[str, str],
    name: str = "slim publish",
    *,
    tracer: Tracer | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Iterator[Span]:
    """A PRODUCER span (child of the current span) around sending one message, whose context
    is injected into ``metadata`` before the body runs: fill the message's metadata from it."""
    _require_otel()
    from opentelemetry import trace

    with _tracer(tracer).start_as_current_span(
        name, kind=trace.SpanKind.PRODUCER, attributes=attributes
    ) as span:
        inject_traceparent(metadata)
        yield span


@contextmanager
def consumer_span(
    metadata: Mapping[str, str],
    name: str = "slim receive",
    *,
    tracer: Tracer | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Iterator[Span]:
    """A CONSUMER span whose parent is the span that sent the message (the last node's, when
    the message crossed traced nodes), current while the body handles the message."""
    _require_otel()
    from opentelemetry import trace

    with _tracer(tracer).start_as_current_span(
        name,
        context=extract_context(metadata),
        kind=trace.SpanKind.CONSUMER,
        attributes=attributes,
    ) as span:
        yield span
