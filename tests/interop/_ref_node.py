"""A reference SLIM node (``slim-bindings``) as a subprocess, for the interop tests.

The reference's Rust runtime is global per process, so each node is its own process. The script
picks a free loopback port (unless ``--port`` is given), writes the node's YAML configuration (an
insecure h2c data-plane server, plus the static links) and starts from it with
``initialize_from_config_with_error``, checks that it accepts TCP connections, and prints one
JSON line on stdout: ``{"event": "ready", "endpoint": "http://127.0.0.1:PORT", "pid": ...}``.
The Rust runtime's own logs (which go to stdout, with ANSI colours) are moved to stderr so that
stdout carries only these JSON lines.

It runs until it is signalled (SIGTERM/SIGKILL by PID from the harness), until its stdin reaches
EOF (the harness holds the other end, so a crashed test run cannot leave an orphan node behind),
or until ``--max-lifetime`` seconds have passed.

Static links (``--link ENDPOINT``, repeatable): the bindings' ``ClientConfig`` has no
``connection_type`` field (``new_config_from_json`` drops it), and ``Service.connect_async`` always
makes an **edge** link, over which the reference propagates no subscriptions. The only way to get
a node-to-node link that carries routes is the node's YAML configuration
(``services.<id>.dataplane.clients[].connection_type: peer``), loaded with
``initialize_from_config_with_error`` (``--link-type peer`` by default; ``edge`` or ``remote`` for
experiments). Links are dialled at start-up, so the nodes they point to must already be up.

Why YAML by default, even without links: ``Service::new_with_config``
(``crates/service/src/service.rs``) builds the message processor from the *first configured
server*. A node started the other way (``--api``: ``initialize_with_configs`` +
``run_server_async``, as in ``reference-observed.md``) has no configured server, so its processor
gets the defaults: ``require_header_mac=false`` (it logs a WARN "server require_header_mac differs
from MessageProcessor"), i.e. it would accept a client that sends no header MAC, and no relaying
of publishes between peer links (observed: as the hub of ref -> hub <- ref, the invite failed
with "message send retries exhausted"). Started from YAML, the node enforces the MAC (the
server's default ``require_header_mac: true``) and, having no ``peers:`` section, relays peer
publishes (``relay_peer_publishes = config.peers.is_none()``); the same hub then works.
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
from pathlib import Path
from typing import IO

import slim_bindings as slim

# Where our JSON lines go; ``main`` points it at the real stdout and moves fd 1 (where the Rust
# runtime logs) to stderr. Importing this file (for its constants) has no such side effect.
_JSON_OUT: list[IO[str]] = [sys.stdout]


def _split_stdout() -> None:
    _JSON_OUT[0] = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)


def emit(event: str, **fields: object) -> None:
    _JSON_OUT[0].write(json.dumps({"event": event, **fields}, sort_keys=True) + "\n")
    _JSON_OUT[0].flush()


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def node_yaml(args: argparse.Namespace, port: int) -> str:
    """The reference node's configuration file: one server, and one client per static link."""
    lines = [
        "tracing:",
        f"  log_level: {args.log_level}",
        "runtime:",
        "  n_cores: 0",
        "services:",
        f"  slim/{args.node_id}:",
        f"    node_id: {args.node_id}",
        "    dataplane:",
        "      servers:",
        f'        - endpoint: "{args.host}:{port}"',
        "          tls:",
        "            insecure: true",
        "      clients:",
    ]
    for link in args.link:
        lines += [
            f'        - endpoint: "{link}"',
            "          tls:",
            "            insecure: true",
            f"          connection_type: {args.link_type}",
        ]
    if not args.link:
        lines[-1] = "      clients: []"
    return "\n".join(lines) + "\n"


async def start_with_api(args: argparse.Namespace, port: int) -> None:
    """The plain node of ``reference-observed.md``: global service + ``run_server_async``."""
    tracing = slim.new_tracing_config()
    tracing.log_level = args.log_level
    config = slim.new_service_config_with(args.node_id, None, slim.new_dataplane_config())
    slim.initialize_with_configs(
        runtime_config=slim.new_runtime_config(),
        tracing_config=tracing,
        service_config=[config],
    )
    service = slim.get_global_service()
    await service.run_server_async(slim.new_insecure_server_config(f"{args.host}:{port}"))


def start_with_yaml(args: argparse.Namespace, port: int) -> Path:
    fd, path = tempfile.mkstemp(prefix=f"ref-node-{port}-", suffix=".yaml", dir=args.config_dir)
    with os.fdopen(fd, "w") as f:
        f.write(node_yaml(args, port))
    slim.initialize_from_config_with_error(path)
    return Path(path)


def watch_stdin() -> None:
    """Exit as soon as the parent closes our stdin (or dies)."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


async def amain(args: argparse.Namespace) -> int:
    port = args.port or free_port(args.host)
    config_path = None
    if args.api:
        if args.link:
            emit("error", error="--api cannot make static links (connect_async is edge-only)")
            return 2
        await start_with_api(args, port)
    else:
        config_path = start_with_yaml(args, port)
    deadline = time.monotonic() + args.start_timeout
    while not accepts(args.host, port):
        if time.monotonic() > deadline:
            emit("error", error=f"server on {args.host}:{port} does not accept connections")
            return 1
        await asyncio.sleep(0.02)
    host = f"[{args.host}]" if ":" in args.host else args.host
    emit(
        "ready",
        endpoint=f"http://{host}:{port}",
        port=port,
        pid=os.getpid(),
        node_id=args.node_id,
        links=list(args.link),
        link_type=args.link_type if args.link else None,
        config=str(config_path) if config_path else None,
        version=slim.get_version(),
    )
    await asyncio.sleep(args.max_lifetime)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: pick a free port")
    p.add_argument("--node-id", default=f"ref-node-{os.getpid()}")
    p.add_argument("--link", action="append", default=[], help="static link to this endpoint")
    p.add_argument("--link-type", choices=("peer", "edge", "remote"), default="peer")
    p.add_argument("--log-level", default="warn")
    p.add_argument(
        "--api",
        action="store_true",
        help="start with initialize_with_configs + run_server_async instead of a YAML config",
    )
    p.add_argument("--config-dir", default=None, help="where to write the YAML (default: $TMPDIR)")
    p.add_argument("--start-timeout", type=float, default=15.0)
    p.add_argument("--max-lifetime", type=float, default=900.0, help="exit after this, seconds")
    return p


def main() -> None:
    args = build_parser().parse_args()
    _split_stdout()
    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        code = asyncio.run(amain(args))
    except Exception as exc:
        emit("error", error=f"{type(exc).__name__}: {exc}")
        code = 1
    os._exit(code)


if __name__ == "__main__":
    main()
