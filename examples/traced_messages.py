"""OpenTelemetry across SLIM in one script: a traced node and two apps with ``tracing=True``.

    python3 examples/traced_messages.py [--messages N]

(needs the ``[otel]`` extra). The sender's app makes a PRODUCER span per publish and carries
its W3C ``traceparent`` in the message's metadata; the node makes a ``slim_process_message``
span under it and passes its own id on; the receiver's app makes a CONSUMER span under the
node's. The spans are kept in memory here (a deployment exports them: ``slimwire node
--otel-endpoint URL``, and the apps use their tracer provider's exporter). The script prints
one line per message, the chain of spans of its trace from root to leaf, and exits 0 when every
trace is that whole chain.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from slimwire.client import connect
from slimwire.config import NodeConfig, OpenTelemetryConfig, ServerConfig
from slimwire.dataplane import Node
from slimwire.tracing import start_node_tracing

SECRET = "example-shared-secret-at-least-32-bytes-long"


def chain(spans: list[ReadableSpan]) -> list[str]:
    """The names of one trace's spans, root first, following parent links."""
    by_parent = {s.parent.span_id if s.parent else None: s for s in spans}
    names, span = [], by_parent.get(None)
    while span is not None:
        names.append(span.name)
        span = by_parent.get(span.context.span_id)
    return names


async def main(messages: int) -> int:
    node_spans, app_spans = InMemorySpanExporter(), InMemorySpanExporter()
    node_tracer = start_node_tracing(OpenTelemetryConfig(enabled=True), "node", exporter=node_spans)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(app_spans))
    tracer = provider.get_tracer("example")
    config = NodeConfig(node_id="node", servers=(ServerConfig(host="127.0.0.1", port=0),))
    async with Node(config, tracer=node_tracer) as node:
        url = f"http://127.0.0.1:{node.port}"
        sender = await connect(url, name="org/example/sender", secret=SECRET, tracing=tracer)
        receiver = await connect(url, name="org/example/receiver", secret=SECRET, tracing=tracer)
        try:
            session = await sender.open_session("org/example/receiver", reliable=True)
            incoming = await receiver.accept(timeout=5)
            for i in range(messages):
                await session.publish(f"message {i}", wait=True, timeout=5)
                await incoming.receive(timeout=5)
        finally:
            await sender.close()
            await receiver.close()
    spans = [*app_spans.get_finished_spans(), *node_spans.get_finished_spans()]
    traces: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        traces.setdefault(span.context.trace_id, []).append(span)
    whole = 0
    for trace_id, members in traces.items():
        names = chain(members)
        print(f"trace {trace_id:032x}: {' -> '.join(names)}", flush=True)
        whole += names == ["slim publish", "slim_process_message", "slim receive"]
    return 0 if whole == messages == len(traces) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3)
    options = parser.parse_args()
    sys.exit(asyncio.run(main(options.messages)))
