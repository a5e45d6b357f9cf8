"""``slimwire bench``: a raw data-plane load generator for any SLIM node (ours or the reference).

In the spirit of ``nats bench``: producers and consumers run in separate processes, each on one
link, and the figures are messages/s, MB/s, loss and one-way latency percentiles.
"""

from __future__ import annotations

import argparse
import logging
import sys

from slimwire.errors import SlimwireError
from slimwire.loadgen import BenchConfig, Progress, format_text, run_bench

HELP = "load-test a SLIM node: producers and consumers in separate processes"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--endpoint",
        required=True,
        help="the node's data-plane URL, e.g. http://127.0.0.1:46357",
    )
    p.add_argument("--messages", "-n", type=int, default=100_000, help="messages to publish in all")
    p.add_argument("--size", "-s", type=int, default=100, help="payload bytes per message")
    p.add_argument("--producers", "-p", type=int, default=1, help="producer processes")
    p.add_argument("--consumers", "-c", type=int, default=1, help="consumer processes")
    p.add_argument(
        "--fanout",
        action="store_true",
        help="consumers subscribe one multicast name; producers publish to it with fanout 256",
    )
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument(
        "--timeout", type=float, default=40.0, help="producer deadline in seconds (default 40)"
    )
    p.add_argument(
        "--idle", type=float, default=3.0, help="a consumer stops after this many idle seconds"
    )
    p.add_argument(
        "--sample-every",
        type=int,
        default=64,
        help="stamp the send time into one message in this many (0: no latency)",
    )
    p.add_argument(
        "--consumer-rate",
        type=float,
        default=0.0,
        help="each consumer reads at most this many messages/s (slow-consumer tests)",
    )
    p.add_argument(
        "--link",
        choices=("raw", "transport"),
        default=None,
        help="raw: the bench's own lean HTTP/2 client (h2c; the default for http://); "
        "transport: slimwire.transport (h2c or TLS; the default for https://)",
    )
    p.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _progress_line(p: Progress) -> None:
    rate = p.received / p.elapsed_s if p.elapsed_s > 0 else 0.0
    sys.stdout.write(
        f"\r  {p.elapsed_s:6.1f} s  sent {p.sent:>12,}/{p.to_send:,}  "
        f"received {p.received:>12,}/{p.expected:,}  {rate:>10,.0f} msg/s "
    )
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        cfg = BenchConfig(
            endpoint=args.endpoint,
            messages=args.messages,
            size=args.size,
            producers=args.producers,
            consumers=args.consumers,
            fanout=args.fanout,
            timeout=args.timeout,
            idle=args.idle,
            sample_every=args.sample_every,
            consumer_rate=args.consumer_rate,
            use_uvloop=not args.no_uvloop,
            link=args.link or ("transport" if args.endpoint.startswith("https:") else "raw"),
        )
    except ValueError as exc:
        print(f"slimwire bench: {exc}", file=sys.stderr)
        return 2
    show = not args.json and sys.stdout.isatty()
    try:
        result = run_bench(cfg, on_progress=_progress_line if show else None)
    except SlimwireError as exc:
        if show:
            sys.stdout.write("\n")
        print(f"slimwire bench: {exc}", file=sys.stderr)
        return 1
    if show:
        sys.stdout.write("\r" + " " * 100 + "\r")
    print(result.to_json() if args.json else format_text(result))
    return 0 if not result.errors and result.lost == 0 else 1
