"""A node's spans: one per forwarded message that carries a W3C ``traceparent``.

The forwarder (``slimwire.dataplane``) stays free of OpenTelemetry: it hands a traced message's
bytes to :meth:`NodeTracer.begin` before routing and reports where it went (or why it was
dropped) to :meth:`NodeTracer.end` after. ``begin`` makes a span that is a child of the
sender's, and passes the node's own span on in the message's ``traceparent``, as the reference
does (``crates/datapath/src/otel_tracing.rs``: extract the parent, enter a
``slim_process_message`` span, inject it back): so the consumer's span hangs under the last
node that touched the message and the whole path shows in one trace. Only the metadata bytes
at the end of the message are rewritten, so the SLIM header (and its MAC) is untouched.

Messages without a valid ``traceparent`` get no span: sampling is the app's decision, and a
node that opened a root trace per message would flood a collector with one-span traces.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from google.protobuf.message import DecodeError

from slimwire._proto import data_plane_pb2 as pb
from slimwire.errors import ConfigError
from slimwire.names import format_id

from ._traceparent import TRACEPARENT, parse_traceparent

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

    from slimwire.config import OpenTelemetryConfig

__all__ = ["NodeTracer", "start_node_tracing", "traces_url"]

_log = logging.getLogger(__name__)

SPAN_NAME = "slim_process_message"
"""The reference's span name, so both kinds of node look alike in a trace view."""
_KINDS = {"publish", "subscribe", "unsubscribe"}
_SESSION_TYPES = {v: k for k, v in pb.SessionMessageType.items()}


def traces_url(endpoint: str) -> str:
    """An OTLP/HTTP traces URL from a collector address (``/v1/traces`` added if missing)."""
    if "://" not in endpoint:
        endpoint = "http://" + endpoint
    if endpoint.rstrip("/").endswith("/v1/traces"):
        return endpoint
    return endpoint.rstrip("/") + "/v1/traces"


def _display(name: pb.Name) -> str:
    s = name.str_name
    parts = [s.str_component_0, s.str_component_1, s.str_component_2]
    if name.name.HasField("name_id"):
        nid = name.name.name_id
        parts.append(format_id(nid.id_0 << 64 | nid.id_1))
    return "/".join(parts)


def _envelope_end(raw: bytes) -> int:
    """Where the routed body (the first field of ``Message``) ends in ``raw``; 0 if unknown."""
    if not raw or raw[0] not in (0x0A, 0x12, 0x1A):
        return 0
    value = shift = 0
    pos = 1
    while pos < len(raw) and shift < 35:
        b = raw[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            end = pos + value
            return end if end <= len(raw) else 0
        shift += 7
    return 0


class NodeTracer:
    """Spans for the messages a node forwards (see the module docstring).

    ``tracer`` is an OpenTelemetry ``Tracer``; ``node_id`` goes into every span as the
    reference's ``service_id``. ``provider`` (optional) is shut down by :meth:`shutdown`.
    """

    def __init__(self, tracer: Tracer, node_id: str, provider: TracerProvider | None = None):
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.tracer = tracer
        self.node_id = node_id
        self.provider = provider
        self._propagator = TraceContextTextMapPropagator()

    def __repr__(self) -> str:
        return f"<NodeTracer node={self.node_id!r}>"

    def begin(self, raw: bytes, conn_id: int, link_id: str = "") -> tuple[bytes, Span] | None:
        """Start the span of one received message; returns the bytes to route instead of
        ``raw`` (its ``traceparent`` now names this span) and the span for :meth:`end`, or
        None when the message carries no valid trace context (route ``raw`` as it is)."""
        try:
            msg = pb.Message.FromString(raw)
        except DecodeError:
            return None
        kind = msg.WhichOneof("message_type")
        incoming = msg.metadata.get(TRACEPARENT)
        if kind not in _KINDS or incoming is None or parse_traceparent(incoming) is None:
            return None
        from opentelemetry.trace import SpanKind, set_span_in_context

        body = getattr(msg, kind)
        header = body.header
        attributes: dict[str, Any] = {
            "function": "forward",
            "service_id": self.node_id,
            "source": _display(header.source),
            "destination": _display(header.destination),
            "connection_id": conn_id,
            "message_type": kind,
            "slimwire.message_size": len(raw),
            "slimwire.fanout": header.fanout,
        }
        if link_id:
            attributes["slimwire.link_id"] = link_id
        if kind == "publish":
            session = body.session
            attributes["session_type"] = _SESSION_TYPES.get(
                session.session_message_type, str(session.session_message_type)
            )
            attributes["session_id"] = session.session_id
            attributes["message_id"] = session.message_id
        parent = self._propagator.extract(msg.metadata)
        span = self.tracer.start_span(
            SPAN_NAME, context=parent, kind=SpanKind.INTERNAL, attributes=attributes
        )
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=set_span_in_context(span))
        outgoing = carrier.get(TRACEPARENT)
        if outgoing is None or outgoing == incoming:
            return raw, span
        return self._rewrite(raw, msg, carrier), span

    @staticmethod
    def _rewrite(raw: bytes, msg: pb.Message, carrier: dict[str, str]) -> bytes:
        """``raw`` with the trace keys of ``carrier`` in its metadata: when the metadata
        follows the routed body (as every encoder writes it) only those trailing bytes are
        re-encoded, so the header's bytes stay exactly as received."""
        end = _envelope_end(raw)
        if end:
            try:
                rest = pb.Message.FromString(raw[end:])
            except DecodeError:
                rest = None
            if rest is not None and rest.WhichOneof("message_type") is None:
                rest.metadata.update(carrier)
                return raw[:end] + rest.SerializeToString()
        msg.metadata.update(carrier)
        return msg.SerializeToString()

    def end(self, span: Span, out_conns: Sequence[int], drop: str | None) -> None:
        """Close ``span`` with where the message went (connection ids) or why it was not."""
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("slimwire.out_connections", list(out_conns))
        if drop is not None:
            span.set_attribute("slimwire.drop_reason", drop)
            span.set_status(Status(StatusCode.ERROR, drop))
        span.end()

    def shutdown(self) -> None:
        """Flush and stop the provider this tracer was made with (blocking: run it in a
        thread from async code, the exporter may wait on the network)."""
        if self.provider is not None:
            self.provider.shutdown()


def start_node_tracing(
    config: OpenTelemetryConfig,
    node_id: str,
    *,
    exporter: SpanExporter | None = None,
) -> NodeTracer:
    """A :class:`NodeTracer` on a provider of its own (the process-wide one is left to the
    app): resource ``service.name``/``service.version``/``deployment.environment.name`` from
    ``config`` and ``service.instance.id`` = ``node_id``, parent-based sampling with
    ``config.sample_ratio`` for roots, spans batched to the OTLP/HTTP ``config.endpoint``.
    ``exporter`` replaces the OTLP one (spans then go out one by one, for tests)."""
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError:  # pragma: no cover - the [otel] extra is in the test extras
        raise ConfigError(
            "tracing.opentelemetry.enabled needs OpenTelemetry: pip install 'slimwire[otel]'"
        ) from None
    resource = Resource.create(
        {
            "service.name": config.service_name,
            "service.version": config.service_version,
            "deployment.environment.name": config.environment,
            "service.instance.id": node_id,
        }
    )
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(config.sample_ratio))
    )
    if exporter is None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:  # pragma: no cover
            raise ConfigError(
                "tracing.opentelemetry needs the OTLP/HTTP exporter: pip install 'slimwire[otel]'"
            ) from None
        url = traces_url(config.endpoint)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
        _log.info("node %s: OpenTelemetry spans to %s", node_id, url)
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return NodeTracer(provider.get_tracer("slimwire.dataplane"), node_id, provider)
