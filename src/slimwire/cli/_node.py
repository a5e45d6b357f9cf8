"""``slimwire node``: run a SLIM messaging node (drop-in for the reference ``slim`` binary)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal

HELP = "run a SLIM messaging node"

_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="node config (the reference's YAML shape)")
    p.add_argument(
        "--listen",
        metavar="HOST:PORT",
        action="append",
        default=[],
        help="serve the data plane here (h2c), replacing the config's servers; repeatable",
    )
    p.add_argument(
        "--link",
        metavar="URL",
        action="append",
        default=[],
        help="dial another node (http://host:port) as a remote link; repeatable",
    )
    p.add_argument(
        "--link-type",
        choices=("remote", "peer", "edge"),
        default="remote",
        help="connection type announced on --link links (peer: to link with reference nodes, "
        "which share subscriptions over peer links only; default remote)",
    )
    p.add_argument("--node-id", help="this node's id (default: from the config)")
    p.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus /metrics and /healthz here (plain HTTP; port 0 picks one)",
    )
    p.add_argument(
        "--no-telemetry",
        action="store_true",
        help="under a controller, do not start a /metrics endpoint for it to scrape (by "
        "default one is started on the data plane's host and a free port unless --metrics)",
    )
    p.add_argument(
        "--otel-endpoint",
        metavar="URL",
        help="trace messages that carry a W3C traceparent: send OpenTelemetry spans to this "
        "OTLP/HTTP collector (e.g. http://localhost:4318; overrides tracing.opentelemetry)",
    )
    p.add_argument(
        "--profile",
        metavar="FILE",
        help="run under cProfile and write the stats to FILE on stop (for performance work)",
    )
    p.add_argument(
        "--log-level",
        choices=sorted(_LEVELS),
        help="log level (default: the config's tracing.log_level)",
    )


def run(args: argparse.Namespace) -> int:
    from slimwire.config import (
        ClientConfig,
        ServerConfig,
        default_config,
        load_config,
        split_host_port,
    )
    from slimwire.errors import ConfigError

    log = logging.getLogger("slimwire.node")
    try:
        cfg = load_config(args.config) if args.config else default_config()
        if args.listen:
            base = cfg.servers[0] if cfg.servers else ServerConfig()
            servers = []
            for spec in args.listen:
                host, port = split_host_port(spec, "--listen")
                servers.append(dataclasses.replace(base, host=host, port=port))
            cfg = dataclasses.replace(cfg, servers=tuple(servers))
        if args.link:
            links = tuple(
                ClientConfig.parse({"endpoint": u, "connection_type": args.link_type}, "--link")
                for u in args.link
            )
            cfg = dataclasses.replace(cfg, clients=cfg.clients + links)
        if args.node_id:
            cfg = dataclasses.replace(cfg, node_id=args.node_id)
        if args.otel_endpoint:
            from slimwire.config import OpenTelemetryConfig

            otel = cfg.opentelemetry or OpenTelemetryConfig()
            endpoint = args.otel_endpoint
            if "://" not in endpoint:
                endpoint = "http://" + endpoint
            cfg = dataclasses.replace(
                cfg, opentelemetry=dataclasses.replace(otel, enabled=True, endpoint=endpoint)
            )
    except ConfigError as exc:
        logging.basicConfig(format="%(levelname)s %(message)s")
        log.error("%s", exc)
        return 2
    level = _LEVELS[args.log_level or cfg.log_level]
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    try:
        import uvloop  # optional extra: a faster event loop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return int(runner.run(_serve(cfg, args.metrics, telemetry=not args.no_telemetry)))
    except OSError as exc:
        log.error("cannot start node: %s", exc)
        return 1
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)


async def _serve(cfg: object, metrics: str | None = None, *, telemetry: bool = True) -> int:
    from slimwire.config import NodeConfig
    from slimwire.dataplane import Node
    from slimwire.errors import ConfigError

    assert isinstance(cfg, NodeConfig)
    log = logging.getLogger("slimwire.node")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        node = Node(cfg)  # tracing without the [otel] extra is refused here
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    await node.start()
    control = None
    monitor = None
    try:
        if metrics:
            from slimwire.config import split_host_port
            from slimwire.metrics import MetricsServer

            try:
                host, port = split_host_port(metrics, "--metrics")
                monitor = MetricsServer(node, host, port)
                await monitor.start()
            except ConfigError as exc:
                log.error("%s", exc)
                return 2
        if cfg.control is not None:
            # under a controller: register with it (links and routes come from there) and
            # serve the node's own ControllerService for ``slimwire ctl node ...``
            from slimwire.control import start_node_control

            try:
                control = await start_node_control(node, cfg.control, telemetry=telemetry)
            except ConfigError as exc:
                log.error("%s", exc)
                return 2
        where = ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in node.addresses)
        log.info("slimwire node ready on %s (node id %s)", where, cfg.node_id)
        if control is not None:
            for server in control.servers:
                log.info("node control service on port %d", server.port)
        await stop.wait()
        log.info("stopping: draining links")
    finally:
        if control is not None:
            await control.aclose()
        if monitor is not None:
            await monitor.close()
        await node.stop()
    return 0
