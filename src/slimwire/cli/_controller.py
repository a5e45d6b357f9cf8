"""``slimwire controller``: run the SLIM control plane (drop-in for the reference controller).

Nodes register on the southbound port (default 50052); operators use the northbound API
(default 50051) with ``slimwire ctl`` or the reference ``slimctl``. State lives in a SQLite file
(``--db``), so a restarted controller resumes where it stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys

HELP = "run the SLIM controller (node registration, routes, northbound API)"

AUTH_ENV = "SLIMWIRE_CONTROLLER_BASIC_AUTH"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="controller config (the reference's YAML)")
    p.add_argument(
        "--db",
        metavar="PATH",
        help="SQLite database file (default: the config's, else ./slimwire-controller.db); "
        "':memory:' keeps nothing",
    )
    p.add_argument("--southbound", metavar="HOST:PORT", help="node-facing endpoint (:50052)")
    p.add_argument("--northbound", metavar="HOST:PORT", help="operator API endpoint (:50051)")
    p.add_argument(
        "--basic-auth",
        metavar="USER:PASS",
        help=f"northbound credentials (or ${AUTH_ENV}, or the config's northbound.basic_auth)",
    )
    p.add_argument(
        "--no-auth",
        action="store_true",
        help="serve the northbound API without credentials (only on trusted networks)",
    )
    p.add_argument(
        "--secret",
        metavar="DOMAIN=SECRET",
        action="append",
        default=[],
        help="a domain's registration secret (32+ bytes); repeatable",
    )
    p.add_argument(
        "--jwks",
        metavar="FILE|URL",
        help="also accept registrations with a JWT from the authority, checked against this "
        "JWKS (a file, or an http(s) URL such as AUTHORITY/.well-known/jwks.json)",
    )
    p.add_argument("--jwt-audience", metavar="AUD", help="required JWT audience (with --jwks)")
    p.add_argument("--jwt-issuer", metavar="ISS", help="required JWT issuer (with --jwks)")
    p.add_argument(
        "--keepalive",
        metavar="SECONDS",
        type=float,
        help="HTTP/2 PING interval and timeout on the node port: a silently cut node is "
        "declared gone after about twice this (default 10)",
    )
    p.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve the controller's Prometheus /metrics and /healthz here",
    )
    p.add_argument(
        "--telemetry-interval",
        metavar="SECONDS",
        type=float,
        default=15.0,
        help="how often the nodes' advertised /metrics are scraped (0: never; default 15)",
    )
    p.add_argument("--tls-cert", metavar="FILE", help="serve both ports over TLS (PEM chain)")
    p.add_argument("--tls-key", metavar="FILE", help="the private key of --tls-cert")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")


def run(args: argparse.Namespace) -> int:
    from slimwire.control._config import load_controller_config, parse_endpoint
    from slimwire.errors import ConfigError

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    log = logging.getLogger("slimwire.controller")
    try:
        cfg = load_controller_config(args.config)
        changes: dict[str, object] = {}
        if args.db:
            changes["database"] = args.db
        if args.southbound:
            changes["southbound"] = parse_endpoint(args.southbound, "--southbound")
        if args.northbound:
            changes["northbound"] = parse_endpoint(args.northbound, "--northbound")
        auth_text = args.basic_auth or os.environ.get(AUTH_ENV)
        if auth_text:
            user, sep, password = auth_text.partition(":")
            if not sep or not user:
                raise ConfigError("--basic-auth: expected USER:PASS")
            changes["basic_auth"] = (user, password)
        for flag, key in (("jwks", "jwks"), ("jwt_audience", "jwt_audience")):
            if getattr(args, flag):
                changes[key] = getattr(args, flag)
        if args.jwt_issuer:
            changes["jwt_issuer"] = args.jwt_issuer
        if args.secret:
            secrets = dict(cfg.secrets)
            for spec in args.secret:
                domain, sep, secret = spec.partition("=")
                if not sep or not domain:
                    raise ConfigError("--secret: expected DOMAIN=SECRET")
                secrets[domain] = secret
            changes["secrets"] = secrets
        cfg = dataclasses.replace(cfg, **changes)  # type: ignore[arg-type]
        if cfg.basic_auth is None and not args.no_auth:
            raise ConfigError(
                "the northbound API needs credentials: --basic-auth USER:PASS "
                f"(or ${AUTH_ENV}), or --no-auth to serve it open"
            )
        metrics = parse_endpoint(args.metrics, "--metrics") if args.metrics else None
        if args.telemetry_interval < 0:
            raise ConfigError("--telemetry-interval: expected seconds >= 0")
        if args.keepalive is not None and not args.keepalive > 0:
            raise ConfigError("--keepalive: expected a positive number of seconds")
        if (cfg.jwt_audience or cfg.jwt_issuer) and not cfg.jwks:
            raise ConfigError("--jwt-audience/--jwt-issuer need --jwks")
        if bool(args.tls_cert) != bool(args.tls_key):
            raise ConfigError("--tls-cert and --tls-key go together")
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    try:
        return asyncio.run(
            _serve(
                cfg,
                args.tls_cert,
                args.tls_key,
                keepalive=args.keepalive,
                metrics=metrics,
                telemetry=args.telemetry_interval or None,
                jwks=cfg.jwks,
                audience=cfg.jwt_audience,
                issuer=cfg.jwt_issuer,
            )
        )
    except OSError as exc:
        log.error("cannot start the controller: %s", exc)
        return 1
    except Exception as exc:  # a bad database, a bad secret
        log.error("controller failed: %s", exc)
        return 1


async def _serve(
    cfg: object,
    cert: str | None = None,
    key: str | None = None,
    *,
    keepalive: float | None = None,
    metrics: tuple[str, int] | None = None,
    telemetry: float | None = 15.0,
    jwks: str | None = None,
    audience: str | None = None,
    issuer: str | None = None,
) -> int:
    import ssl

    from slimwire.auth import JwksFile, JwksUrl, JwtVerifier, KeySource
    from slimwire.control._config import ControllerConfig
    from slimwire.control._controller import Controller
    from slimwire.control._store import Store

    assert isinstance(cfg, ControllerConfig)
    tls = None
    if cert and key:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
    verifier = None
    if jwks:
        source: KeySource = (
            JwksUrl(jwks) if jwks.startswith(("http://", "https://")) else JwksFile(jwks)
        )
        verifier = JwtVerifier(source, audience=audience, issuer=issuer)
    timing = (
        {}
        if keepalive is None
        else {"keepalive_interval": keepalive, "keepalive_timeout": keepalive}
    )
    store = Store(cfg.database)
    ctl = Controller(
        store,
        topology=cfg.topology,
        secrets=dict(cfg.secrets),
        require_credentials=cfg.require_credentials,
        basic_auth=cfg.basic_auth,
        southbound=cfg.southbound,
        northbound=cfg.northbound,
        ssl=tls,
        jwt_verifier=verifier,
        metrics=metrics,
        telemetry_interval=telemetry,
        **timing,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with ctl:
        # one machine-readable line, so scripts (and tests) can find ports chosen with :0
        print(
            f"controller listening southbound={ctl.southbound_port} "
            f"northbound={ctl.northbound_port} db={cfg.database}"
            + (f" metrics={ctl.metrics_port}" if ctl.metrics_port is not None else ""),
            flush=True,
        )
        await stop.wait()
    store.close()
    print("controller stopped", file=sys.stderr, flush=True)
    return 0
