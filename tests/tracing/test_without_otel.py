"""slimwire imports and runs without the [otel] extra; tracing then says what is missing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ImportError(f"blocked: {name}")
            return None

    sys.meta_path.insert(0, Block())
    import slimwire, slimwire.tracing, slimwire.dataplane, slimwire.control, slimwire.cli
    from slimwire.config import NodeConfig, OpenTelemetryConfig, ServerConfig
    from slimwire.dataplane import Node
    from slimwire.errors import ConfigError
    from slimwire.tracing import inject_traceparent, parse_traceparent

    assert parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    servers = (ServerConfig(host="127.0.0.1", port=0),)

    async def main():
        async with Node(NodeConfig(node_id="plain", servers=servers)) as node:
            assert node.tracer is None
        try:
            Node(NodeConfig(servers=servers, opentelemetry=OpenTelemetryConfig(enabled=True)))
        except ConfigError as exc:
            print("refused:", exc)
        try:
            inject_traceparent({})
        except ConfigError as exc:
            print("refused:", exc)
        assert not any(m.startswith("opentelemetry") for m in sys.modules)
        print("ok")

    asyncio.run(main())
    """
)


def test_no_opentelemetry_needed_unless_tracing_is_on() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "ok"
    assert sum("slimwire[otel]" in line for line in lines if line.startswith("refused:")) == 2
