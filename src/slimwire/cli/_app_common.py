"""What ``slimwire listen``, ``send`` and ``group`` share: options, the secret, output, errors.

These commands are meant for shell pipelines and scripts, so the contract is strict: stdout
carries only message payloads, one per line, flushed at once (a reader sees each as it
arrives); every status line and error goes to stderr; any failure exits non-zero with one
line saying what went wrong. Arguments that cannot work (a short secret, a bad name) are
rejected before anything touches the network, with exit status 2 as argparse uses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from slimwire.errors import ConfigError, SlimwireError, SlimwireTimeout
from slimwire.names import Name

__all__ = [
    "DEFAULT_ENDPOINT",
    "EXIT_ERROR",
    "EXIT_USAGE",
    "MIN_SECRET_BYTES",
    "SECRET_ENV",
    "add_common_arguments",
    "check_common",
    "connect_app",
    "emit_payload",
    "parse_name",
    "run_command",
    "status",
]

DEFAULT_ENDPOINT = "http://127.0.0.1:46357"
SECRET_ENV = "SLIMWIRE_SECRET"
MIN_SECRET_BYTES = 32
"""The reference refuses shorter shared secrets ("hmac key is too short"); so do we, up front."""
DEFAULT_TIMEOUT = 10.0
EXIT_ERROR = 1
EXIT_USAGE = 2

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

_prog = ["slimwire"]


def add_common_arguments(p: argparse.ArgumentParser, *, default_name: str | None = None) -> None:
    """The options every app command takes (endpoint, identity, timeout, logging)."""
    p.add_argument(
        "--endpoint",
        metavar="URL",
        default=DEFAULT_ENDPOINT,
        help=f"the node's data plane, http://host:port (default {DEFAULT_ENDPOINT})",
    )
    p.add_argument(
        "--name",
        metavar="ORG/NS/SVC",
        required=default_name is None,
        default=default_name,
        help="this app's name (its id is derived from a fresh identity)",
    )
    p.add_argument(
        "--secret",
        metavar="S",
        default=None,
        help=f"shared secret, at least {MIN_SECRET_BYTES} bytes (default: ${SECRET_ENV})",
    )
    p.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"limit for every wait: connecting, a session, a reply (default {DEFAULT_TIMEOUT:g})",
    )
    p.add_argument(
        "--log-level",
        choices=sorted(_LEVELS),
        default="warning",
        help="log level on stderr (default warning)",
    )


def status(text: str) -> None:
    """One status line on stderr (never stdout: stdout is for payloads only)."""
    print(f"{_prog[0]}: {text}", file=sys.stderr, flush=True)


def emit_payload(payload: bytes) -> None:
    """One payload on stdout, newline-terminated and flushed at once."""
    out = sys.stdout.buffer
    out.write(payload)
    out.write(b"\n")
    out.flush()


def parse_name(text: str, option: str) -> Name:
    try:
        return Name.parse(text)
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from None


def _normalize_endpoint(text: str) -> str:
    text = text.strip()
    if "://" not in text:
        text = f"http://{text}"
    scheme = text.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise ConfigError(f"--endpoint: expected http://host:port or https://host:port, got {text}")
    return text


def check_common(args: argparse.Namespace) -> None:
    """Validate the shared options in place; raises :class:`ConfigError` with the option's name.

    The secret is resolved here (``--secret``, else ``$SLIMWIRE_SECRET``) so that a missing or
    short one is reported as such, not as an authentication failure deep in a session.
    """
    secret = args.secret if args.secret is not None else os.environ.get(SECRET_ENV)
    if not secret:
        raise ConfigError(f"a shared secret is required: pass --secret or set ${SECRET_ENV}")
    size = len(secret.encode())
    if size < MIN_SECRET_BYTES:
        raise ConfigError(
            f"the shared secret is too short: {size} bytes, at least {MIN_SECRET_BYTES} needed"
        )
    args.secret = secret
    args.endpoint = _normalize_endpoint(args.endpoint)
    if not args.timeout > 0:
        raise ConfigError("--timeout must be positive")
    args.name = parse_name(args.name, "--name")


async def connect_app(args: argparse.Namespace) -> Any:
    """Connect to the node, bounded by ``--timeout``; unreachable nodes become one clear error."""
    from slimwire.client import connect

    try:
        async with asyncio.timeout(args.timeout):
            return await connect(args.endpoint, name=args.name, secret=args.secret)
    except TimeoutError:
        raise SlimwireTimeout(
            f"cannot connect to {args.endpoint}: no answer in {args.timeout:g}s"
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise SlimwireError(f"cannot connect to {args.endpoint}: {reason}") from None
    except SlimwireError as exc:
        text = str(exc)
        if args.endpoint in text:
            raise
        raise SlimwireError(f"cannot connect to {args.endpoint}: {text}") from None


def run_command(
    prog: str,
    args: argparse.Namespace,
    main: Callable[[argparse.Namespace], Coroutine[Any, Any, int]],
) -> int:
    """Validate, configure logging, run ``main`` on an event loop and turn errors into exit codes.

    SIGINT and SIGTERM cancel ``main``, so its ``finally`` blocks close sessions and the link
    politely; a second signal is not needed.
    """
    _prog[0] = prog
    logging.basicConfig(
        level=_LEVELS[args.log_level],
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    try:
        check_common(args)
    except ConfigError as exc:
        status(f"error: {exc}")
        return EXIT_USAGE
    try:
        import uvloop  # optional extra: a faster event loop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(_guarded(main, args))
    except ConfigError as exc:
        status(f"error: {exc}")
        return EXIT_USAGE
    except (SlimwireError, OSError) as exc:
        status(f"error: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


async def _guarded(
    main: Callable[[argparse.Namespace], Coroutine[Any, Any, int]], args: argparse.Namespace
) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    stopped: list[int] = []

    def on_signal(sig: int) -> None:
        stopped.append(sig)
        if task is not None:
            task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await main(args)
    except asyncio.CancelledError:
        if not stopped:
            raise
        status("stopped")
        return 128 + stopped[0]
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
