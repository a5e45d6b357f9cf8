"""Reference processes (``slim-bindings``) for the link interop tests, one per subprocess.

``node``: a reference node started from a YAML configuration, so that its processor enforces the
header MAC (the server default ``require_header_mac: true``); prints
``{"event": "ready", "endpoint": ...}``.
``app``: a reference app that connects to ``--endpoint`` (strict MAC, the client default) and
subscribes to its own name, i.e. sends one MAC'd Subscribe; prints ``{"event": "subscribed"}``
once the SubscriptionAck came back, or ``{"event": "error", ...}``.

Both exit when their stdin reaches EOF (the test holds the other end), or after ``--lifetime``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import threading
import time

# stdout carries only our JSON lines; the Rust runtime logs to stdout, so send those to stderr.
_OUT = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)


def emit(event: str, **fields: object) -> None:
    _OUT.write(json.dumps({"event": event, **fields}) + "\n")
    _OUT.flush()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def watch_stdin() -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


async def node(args: argparse.Namespace) -> None:
    import slim_bindings as slim

    port = free_port()
    config = f"""\
tracing:
  log_level: warn
runtime:
  n_cores: 1
services:
  slim/{args.node_id}:
    node_id: {args.node_id}
    dataplane:
      servers:
        - endpoint: "127.0.0.1:{port}"
          tls:
            insecure: true
      clients: []
"""
    fd, path = tempfile.mkstemp(prefix="link-ref-node-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(config)
    slim.initialize_from_config_with_error(path)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                emit("error", error="node does not accept connections")
                return
            await asyncio.sleep(0.02)
    os.unlink(path)
    emit("ready", endpoint=f"127.0.0.1:{port}", node_id=args.node_id)
    await asyncio.sleep(args.lifetime)


async def app(args: argparse.Namespace) -> None:
    import slim_bindings as slim

    tracing = slim.new_tracing_config()
    tracing.log_level = "warn"
    slim.initialize_with_configs(
        runtime_config=slim.new_runtime_config(),
        tracing_config=tracing,
        service_config=[slim.new_service_config()],
    )
    svc = slim.get_global_service()
    conn = await svc.connect_async(slim.new_insecure_client_config(f"http://{args.endpoint}"))
    name = slim.Name.from_string(args.name)
    application = svc.create_app_with_secret(name, "s" * 40)
    await asyncio.wait_for(application.subscribe_async(name, conn), timeout=args.lifetime)
    emit("subscribed", name=args.name)
    await asyncio.sleep(args.lifetime)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=("node", "app"))
    p.add_argument("--node-id", default=f"link-ref-{os.getpid()}")
    p.add_argument("--endpoint", default="")
    p.add_argument("--name", default="org/ns/refapp")
    p.add_argument("--lifetime", type=float, default=60.0)
    args = p.parse_args()
    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        asyncio.run(node(args) if args.role == "node" else app(args))
    except Exception as exc:
        emit("error", error=f"{type(exc).__name__}: {exc}")
    os._exit(0)


if __name__ == "__main__":
    main()
