"""The ``slimwire`` command. Each subcommand lives in its own private module exposing
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``; modules are imported
only when their command runs, so ``slimwire --help`` stays fast."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# command name -> module; a module that is not present yet is simply not offered.
COMMANDS: dict[str, str] = {
    "node": "slimwire.cli._node",
    "bench": "slimwire.cli._bench",
    "listen": "slimwire.cli._listen",
    "send": "slimwire.cli._send",
    "group": "slimwire.cli._group",
    "authority": "slimwire.cli._authority",
    "controller": "slimwire.cli._controller",
    "ctl": "slimwire.cli._ctl",
}


def _available() -> dict[str, object]:
    modules: dict[str, object] = {}
    for name, path in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(path)
        except ModuleNotFoundError as exc:
            if exc.name != path:
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slimwire", description="SLIM messaging in Python")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in _available().items():
        cmd = sub.add_parser(name, help=getattr(module, "HELP", None))
        module.add_arguments(cmd)  # type: ignore[attr-defined]
        cmd.set_defaults(_run=module.run)  # type: ignore[attr-defined]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
