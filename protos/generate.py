"""Regenerate the Python modules of the wire contract.

Usage (from the repository root):  python protos/generate.py [OUT_DIR]

Writes facebridge_wire/v1/facebridge_pb2.py, facebridge_pb2.pyi and facebridge_pb2_grpc.py under OUT_DIR
(default: this protos/ folder, where they are committed). The test suite regenerates into a temporary
folder and fails when the committed modules are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
PROTO_FILES = ("facebridge_wire/v1/facebridge.proto",)


def generate(out_dir: Path) -> list[Path]:
    """Run protoc (from grpcio-tools) on PROTO_FILES; return the generated files."""
    from grpc_tools import protoc  # build-time dependency only

    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(PROTO_ROOT / p) for p in PROTO_FILES),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed for {', '.join(PROTO_FILES)}")
    return sorted(p for p in out_dir.rglob("*_pb2*.py*"))


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else PROTO_ROOT
    for path in generate(out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
