"""``slimwire authority``: run the authentication service, or manage its clients and keys.

    slimwire authority add-client --db auth.db --id agent-a --secret-env AGENT_A_SECRET \\
        --names 'org/ns/*' --groups ops
    slimwire authority serve --db auth.db --issuer https://auth.example --port 8443 \\
        --tls-cert server.pem --tls-key server.key --client-ca clients-ca.pem
    slimwire authority rotate --db auth.db
    slimwire authority jwks --db auth.db

Secrets are read from an environment variable or stdin, never from the command line (where
``ps`` would show them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys

HELP = "run the authentication service (JWT issuer + JWKS) or manage its clients and keys"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="authority_command", required=True, metavar="ACTION")
    serve = sub.add_parser("serve", help="serve POST /v1/token and GET /.well-known/jwks.json")
    add = sub.add_parser("add-client", help="register or replace a client")
    rotate = sub.add_parser("rotate", help="start signing with a new key (old one overlaps)")
    jwks = sub.add_parser("jwks", help="print the current JWKS")
    for q in (serve, add, rotate, jwks):
        q.add_argument("--db", required=True, metavar="FILE", help="SQLite state file")
    for q in (serve, rotate, jwks):
        q.add_argument("--issuer", default="slimwire-authority", help="iss claim")
        q.add_argument("--audience", default="slim", help="aud claim (default slim)")
        q.add_argument("--lifetime", type=int, default=900, help="token lifetime, s (900)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--tls-cert", metavar="PEM", help="server certificate chain (HTTPS)")
    serve.add_argument("--tls-key", metavar="PEM", help="server private key")
    serve.add_argument("--client-ca", metavar="PEM", help="CA for client certificates (mTLS)")
    serve.add_argument("--rotate-every", type=float, metavar="S", help="rotate the key every S s")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    add.add_argument("--id", required=True, help="client id (mTLS: the certificate CN)")
    add.add_argument("--secret-env", metavar="VAR", help="read the client secret from $VAR")
    add.add_argument("--secret-stdin", action="store_true", help="read the secret from stdin")
    add.add_argument("--mtls", action="store_true", help="allow certificate authentication")
    add.add_argument(
        "--names", nargs="+", default=["*"], help="name globs (org/ns/svc) it may claim"
    )
    add.add_argument("--groups", nargs="*", default=[], help="groups claim of its tokens")


def run(args: argparse.Namespace) -> int:
    from slimwire.authority import Authority, AuthorityStore
    from slimwire.errors import ConfigError

    try:
        store = AuthorityStore(args.db)
    except ConfigError as exc:
        print(f"slimwire authority: {exc}", file=sys.stderr)
        return 2
    try:
        if args.authority_command == "add-client":
            return _add_client(store, args)
        authority = Authority(
            store,
            issuer=args.issuer,
            audience=args.audience,
            lifetime=args.lifetime,
            rotate_every=getattr(args, "rotate_every", None),
        )
        if args.authority_command == "rotate":
            print(authority.rotate())
            return 0
        if args.authority_command == "jwks":
            print(json.dumps(authority.jwks(), indent=2))
            return 0
        return _serve(authority, args)
    finally:
        store.close()


def _add_client(store: object, args: argparse.Namespace) -> int:
    from slimwire.authority import AuthorityStore

    assert isinstance(store, AuthorityStore)
    secret = None
    if args.secret_env:
        secret = os.environ.get(args.secret_env)
        if not secret:
            print(f"slimwire authority: ${args.secret_env} is empty", file=sys.stderr)
            return 2
    elif args.secret_stdin:
        secret = sys.stdin.readline().rstrip("\n")
    try:
        store.add_client(
            args.id, secret=secret, names=args.names, groups=args.groups, allow_mtls=args.mtls
        )
    except ValueError as exc:
        print(f"slimwire authority: {exc}", file=sys.stderr)
        return 2
    print(f"client {args.id} registered")
    return 0


def _serve(authority: object, args: argparse.Namespace) -> int:
    from slimwire.authority import Authority, AuthorityServer

    assert isinstance(authority, Authority)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    async def main() -> None:
        server = AuthorityServer(
            authority,
            args.host,
            args.port,
            certfile=args.tls_cert,
            keyfile=args.tls_key,
            client_ca=args.client_ca,
        )
        await server.start()
        print(f"slimwire authority ready on {server.url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.close()
        print("slimwire authority stopped", flush=True)

    asyncio.run(main())
    return 0
