"""The ``facebridge`` command as users and host plugins run it: subprocesses, a private server, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import make_plate, read_exr

CLI = [sys.executable, "-m", "facebridge"]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}


def test_process_sequence_with_private_server_json_progress_and_report(
    faces_dir: Path, dlib_models, tmp_path: Path
) -> None:
    plate, _ = make_plate(faces_dir / "st_people_0.png", tmp_path / "plate.1001.exr", dlib_models, aovs=False)
    (tmp_path / "plate.1002.exr").write_bytes(plate.read_bytes()[:5000])  # truncated
    # 1003 is missing
    (tmp_path / "plate.1004.exr").write_bytes(plate.read_bytes())
    report = tmp_path / "report.json"
    proc = subprocess.run(
        CLI + ["process", "--source", str(faces_dir / "lp_d12.jpg"), "--input", str(tmp_path / "plate.####.exr"),
               "--output", str(tmp_path / "out" / "swap.%04d.exr"), "--frames", "1001-1004", "--report", str(report),
               "--progress", "json"],
        capture_output=True, text=True, timeout=600, env=_env(tmp_path), stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[0]["event"] == "start" and events[0]["total"] == 4
    assert events[-1] == {**events[-1], "event": "end", "ok": 2, "failed": 2}
    frames = {e["frame"]: e for e in events if e["event"] == "frame"}
    assert frames[1002]["status"] == "failed" and frames[1002]["kind"] == "decode"
    assert frames[1003]["status"] == "failed" and frames[1003]["kind"] == "missing"
    errors = [line for line in proc.stderr.splitlines() if line.startswith("facebridge: error:")]
    assert any("plate.1002.exr (frame 1002)" in e for e in errors)
    assert any("plate.1003.exr (frame 1003): input file is missing" in e for e in errors)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["swap.1001.exr", "swap.1004.exr"]
    data = json.loads(report.read_text())
    assert data["totals"]["frames"] == 4 and data["totals"]["failed"] == 2 and data["totals"]["faces_swapped"] == 2
    entry = data["frames"][0]
    assert entry["frame"] == 1001 and entry["faces_found"] == 1 and entry["faces_swapped"] == 1
    assert 0 < entry["faces"][0]["identity_distance"] < entry["faces"][0]["identity_distance_plate"]
    assert {"tracks", "model", "composite", "decode", "encode"} <= set(entry["timings_ms"])
    assert entry["faces"][0]["track"] >= 0 and entry["faces"][0]["cache"] == "miss"
    assert data["analysis"]["frames"] == 3 and len(data["analysis"]["failed"]) == 1
    assert sum(e["event"] == "analyse" for e in events) == 3
    assert read_exr(tmp_path / "out" / "swap.1001.exr")[1].get_string_attribute("facebridge:params_hash") == data["params_hash"]


def test_process_exits_2_with_one_line_when_the_source_has_no_face(tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(blank), np.full((64, 64, 3), 128, np.uint8))
    (tmp_path / "in.exr").write_bytes(b"")
    proc = subprocess.run(
        CLI + ["process", "--source", str(blank), "--input", str(tmp_path / "in.exr"), "--output",
               str(tmp_path / "out.exr"), "--progress", "none"],
        capture_output=True, text=True, timeout=300, env=_env(tmp_path), stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    assert "facebridge: error: OpenSession: source 'blank.png': no face found" in proc.stderr
    assert not (tmp_path / "out.exr").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_binds_a_free_port_and_shuts_down_gracefully(tmp_path: Path, signum: int) -> None:
    audit = tmp_path / "audit.jsonl"
    proc = subprocess.Popen(CLI + ["serve", "--port", "0", "--device", "cpu", "--audit-log", str(audit)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path))
    assert proc.stdout is not None and proc.stderr is not None  # pipes
    try:
        line = proc.stdout.readline()
        assert line.startswith("facebridge serving on 127.0.0.1:"), line
        port = int(line.split(":")[1].split()[0])
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        time.sleep(0.2)
        proc.send_signal(signum)
        assert proc.wait(timeout=30) == 0
        assert "stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_building_the_command_line_loads_no_client_and_no_server() -> None:
    """``facebridge serve``, ``--help`` and option errors never load the gRPC client or the server's models."""
    code = ("import sys; from facebridge.cli import build_parser; build_parser(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'grpc', 'numpy', 'inference_server', "
            "'facebridge_wire', 'PySide6', 'cv2', 'torch'}), 'facebridge.client.grpc_client' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[]", "False"]


_SPAWN_PROBE = """
import subprocess, sys
def spawned(self, args, *rest, **options):
    if "serve" in args:  # the private server: report what this process had loaded, and stop there
        print("spawned", sorted(m for m in ("grpc", "facebridge_wire.v1.facebridge_pb2",
                                            "facebridge.client.grpc_client") if m in sys.modules))
        raise SystemExit(0)
    raise AssertionError(args)
subprocess.Popen.__init__ = spawned
from facebridge.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_process_spawns_its_private_server_before_loading_grpc(tmp_path: Path) -> None:
    """The private server starts (~2 s) while the client imports its gRPC side (~0.2 s), not after it; the
    arguments are still checked first: a run that fails on them starts no server and says the same."""
    for k in (1, 2):
        (tmp_path / f"plate.{k:04d}.exr").write_bytes(b"")  # listed, not read, before the server starts
    args = ["process", "--source", str(tmp_path / "face.jpg"), "--output", str(tmp_path / "out" / "o.####.exr"),
            "--progress", "none"]
    proc = subprocess.run([sys.executable, "-c", _SPAWN_PROBE, *args, "--input", str(tmp_path / "plate.####.exr")],
                          capture_output=True, text=True, timeout=60, env=_env(tmp_path), stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "spawned []", proc.stdout
    assert (tmp_path / "out").is_dir()  # (the output folder exists before the server is allowed it)
    proc = subprocess.run([sys.executable, "-c", _SPAWN_PROBE, *args, "--input", str(tmp_path / "none.####.exr")],
                          capture_output=True, text=True, timeout=60, env=_env(tmp_path), stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "spawned" not in proc.stdout
    assert proc.stderr.strip() == f"facebridge: error: no files match '{tmp_path / 'none.####.exr'}'"
