"""OpenTelemetry traces across SLIM, with W3C ``traceparent`` carried in message metadata.

Everything here imports without the ``[otel]`` extra; the functions that need OpenTelemetry
import it when called (and raise :class:`slimwire.errors.ConfigError` when it is missing).
Apps: :func:`inject_traceparent` / :func:`publish_span` on send, :func:`extract_context` /
:func:`consumer_span` on receive. Nodes: :func:`start_node_tracing` makes the
:class:`NodeTracer` a ``slimwire.dataplane.Node`` uses. See ``docs/tracing.md``.
"""

from ._app import consumer_span, extract_context, inject_traceparent, publish_span
from ._node import NodeTracer, start_node_tracing, traces_url
from ._traceparent import TRACEPARENT, TRACESTATE, TraceParent, parse_traceparent

__all__ = [
    "TRACEPARENT",
    "TRACESTATE",
    "NodeTracer",
    "TraceParent",
    "consumer_span",
    "extract_context",
    "inject_traceparent",
    "parse_traceparent",
    "publish_span",
    "start_node_tracing",
    "traces_url",
]
