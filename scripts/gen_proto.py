"""Regenerate the protobuf modules in src/slimwire/_proto from our .proto files.

Run ``python scripts/gen_proto.py`` after editing a .proto; ``--check`` regenerates into a
temporary folder and exits 1 if the committed modules differ (CI runs this through a test).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PROTO_DIR = SRC / "slimwire" / "_proto"


def generate(out: Path) -> list[Path]:
    """Run protoc (from grpcio-tools) for every .proto; return the generated files."""
    import grpc_tools
    from grpc_tools import protoc  # type: ignore[import-untyped]

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    protos = sorted(PROTO_DIR.glob("*.proto"))
    args = [
        "protoc",
        f"-I{SRC}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--mypy_out={out}",
        *[str(p.relative_to(SRC)) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted((out / "slimwire" / "_proto").glob("*_pb2.py*"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generated = generate(Path(tmp))
        stale = [
            g.name
            for g in generated
            if not (PROTO_DIR / g.name).exists()
            or not filecmp.cmp(g, PROTO_DIR / g.name, shallow=False)
        ]
        if args.check:
            if stale:
                print("stale generated modules:", ", ".join(stale), file=sys.stderr)
                return 1
            return 0
        for g in generated:
            shutil.copyfile(g, PROTO_DIR / g.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
