"""The committed generated modules must equal what ``python protos/generate.py`` produces now."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None, reason="grpcio-tools not installed")
def test_generated_modules_are_current(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(REPO / "protos" / "generate.py"), str(tmp_path)], check=True,
                   capture_output=True)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*_pb2*"))
    assert generated, "generator produced nothing"
    for rel in generated:
        committed = REPO / "protos" / rel
        assert committed.exists(), f"{rel} is not committed; run python protos/generate.py"
        assert committed.read_bytes() == (tmp_path / rel).read_bytes(), (
            f"protos/{rel} is stale; run python protos/generate.py"
        )


def test_contract_has_the_expected_rpcs() -> None:
    from facebridge_wire.v1 import facebridge_pb2 as pb

    service = pb.DESCRIPTOR.services_by_name["FaceBridge"]
    methods = {m.name: (m.client_streaming, m.server_streaming) for m in service.methods}
    assert methods == {
        "GetServerInfo": (False, False),
        "OpenSession": (False, False),
        "CloseSession": (False, False),
        "ProcessFrames": (True, True),
        "AnalyseShot": (True, True),
        "ListShots": (False, False),
        "Preview": (False, False),
        "ExportAnalysis": (False, True),
        "ImportAnalysis": (True, False),
    }
