"""Shared means hostile, the cache dir: nothing read from it decides a path, a verification or a failure.

Payload paths come from keys (never the index's ``relpath``), the digest memo is trusted only as this user's
0600 file, cache and audit files are 0600 in 0700 folders, a cache that cannot be written or holds corrupt
payloads never fails a frame, a broken database or unwritable cache dir is one line at start, and scratch
folders of gone servers are removed. Real servers on loopback ports; every probe has a timeout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from support import make_plate, make_sequence, read_exr, same_bits
from test_security_files import NOBODY, _nobody_python

from facebridge.client.grpc_client import FaceBridgeClient, FrameJob
from facebridge.settings import RenderParams
from inference_server.models.registry import DIGEST_MEMO_FILE, DigestMemo, load_records
from inference_server.paths import scratch_parent
from inference_server.server import scratch as scratch_module
from inference_server.server.app import RunningServer, ServerConfig, start_server
from inference_server.store import payload_cache as payload_module
from inference_server.store.payload_cache import PayloadCache
from inference_server.store.shot_db import CacheEntry, ShotDatabase

CLI = [sys.executable, "-m", "facebridge"]
CALL_TIMEOUT = 60.0
REPO = Path(__file__).resolve().parents[1]


def _server(cache: Path, models: Path, dlib_models) -> RunningServer:
    return start_server(ServerConfig(port=0, device="cpu", cache_dir=cache, models_dir=models), models=dlib_models)


@pytest.fixture(scope="module")
def face_plate(faces_dir: Path, dlib_models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_plate(faces_dir / "fr_obama.jpg", tmp_path_factory.mktemp("cache-plate") / "plate.exr", dlib_models)[0]


def _render_stream(address: str, plate: Path, out: Path, faces_dir: Path, shot: str = "cache") -> str:
    with FaceBridgeClient(address, timeout=CALL_TIMEOUT) as client:
        session = client.open_session([faces_dir / "lp_d12.jpg"], shot=shot, params=RenderParams(stabilise=0.0))
        (outcome,) = client.process(session.session_id, [FrameJob(1, str(plate), str(out))])
        return outcome.status


# -- the index decides no path -------------------------------------------------------------------------------

def test_a_crafted_relpath_never_reaches_a_file(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"keep me")
    db = ShotDatabase(tmp_path / "cache" / "shots.sqlite")
    cache = PayloadCache(tmp_path / "cache" / "payloads", db, max_bytes=1, memory_bytes=0)
    digest = hashlib.sha256(victim.read_bytes()).hexdigest()
    db.cache_insert(CacheEntry("a" * 64, "../../victim.txt", 10**12, digest))
    db.cache_insert(CacheEntry("../../victim", "../../victim.txt", 10**12, digest))
    assert cache.get("a" * 64) is None and not cache.contains("a" * 64)
    db.cache_insert(CacheEntry("b" * 64, "../../victim.txt", 10**12, digest))
    cache.put("c" * 64, {"x": np.zeros(4)})  # over budget: evicts the crafted rows
    assert victim.read_bytes() == b"keep me"
    assert db.cache_lookup("../../victim") is None and db.cache_lookup("b" * 64) is None


def test_a_crafted_index_row_on_a_real_server_deletes_nothing(face_plate: Path, faces_dir: Path, dlib_models,
                                                              tmp_path: Path) -> None:
    victim = tmp_path / "victim.exr"
    victim.write_bytes(b"someone's render")
    cache = tmp_path / "cache"
    db = ShotDatabase(cache / "shots.sqlite")
    db.cache_insert(CacheEntry("d" * 64, "../../victim.exr", 10**13, "0" * 64))  # huge: the next put evicts it
    db.close()
    running = _server(cache, tmp_path / "models", dlib_models)
    try:
        assert _render_stream(f"127.0.0.1:{running.port}", face_plate, tmp_path / "o.exr", faces_dir) == "ok"
    finally:
        running.stop(grace=1.0)
    assert victim.read_bytes() == b"someone's render"
    assert ShotDatabase(cache / "shots.sqlite").cache_lookup("d" * 64) is None  # evicted, without a file touched


# -- the digest memo -----------------------------------------------------------------------------------------

def _forge(memo_dir: Path, model: Path, sha256: str) -> Path:
    info = model.stat()
    memo = memo_dir / DIGEST_MEMO_FILE
    memo.write_text(json.dumps({str(model): {"size": info.st_size, "mtime_ns": info.st_mtime_ns,
                                             "ctime_ns": info.st_ctime_ns, "inode": info.st_ino,
                                             "device": info.st_dev, "sha256": sha256}}))
    return memo


def test_a_forged_digest_memo_never_makes_a_file_verified(dlib_models, tmp_path: Path) -> None:
    record = next(r for r in load_records() if r.name == "inswapper_128")
    assert record.sha256
    models, cache = tmp_path / "models", tmp_path / "cache"
    models.mkdir()
    cache.mkdir()
    fake = models / "inswapper_128.onnx"
    fake.write_bytes(b"x" * 141)
    memo = _forge(cache, fake, record.sha256)
    os.chmod(memo, 0o644)  # anyone could have written it
    if os.geteuid() == 0:
        os.chown(memo, NOBODY, NOBODY)
    running = _server(cache, models, dlib_models)
    try:
        with FaceBridgeClient(f"127.0.0.1:{running.port}", timeout=CALL_TIMEOUT) as client:
            states = {m.id: m.status for m in client.server_info().models}
        assert states["inswapper_128"] == "hash-mismatch"
    finally:
        running.stop(grace=1.0)
    assert stat.S_IMODE(memo.stat().st_mode) == 0o600 and memo.stat().st_uid == os.geteuid()  # written again
    assert json.loads(memo.read_text())[str(fake)]["sha256"] == hashlib.sha256(b"x" * 141).hexdigest()
    # this user's own memo, right when written; the file is then rewritten and re-dated: ctime tells
    before = fake.stat()
    time.sleep(0.01)
    fake.write_bytes(b"y" * 141)
    os.utime(fake, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert DigestMemo(cache).digest(fake) == hashlib.sha256(b"y" * 141).hexdigest()


# -- permissions ---------------------------------------------------------------------------------------------

def test_cache_and_audit_files_are_private(face_plate: Path, faces_dir: Path, dlib_models, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    old = os.umask(0o022)
    try:
        running = _server(cache, tmp_path / "models", dlib_models)
        try:
            assert _render_stream(f"127.0.0.1:{running.port}", face_plate, tmp_path / "o.exr", faces_dir) == "ok"
        finally:
            running.stop(grace=1.0)
    finally:
        os.umask(old)
    files = [p for p in cache.rglob("*") if p.is_file()]
    folders = [p for p in cache.rglob("*") if p.is_dir()]
    assert any(p.suffix == ".npz" for p in files) and any(p.name == "audit.jsonl" for p in files)
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {"0o600"}, [
        (p.name, oct(p.stat().st_mode)) for p in files]
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in folders} == {"0o700"}
    if os.geteuid() == 0:
        npz = next(p for p in files if p.suffix == ".npz")
        read = subprocess.run(["/bin/cat", str(npz)], user=NOBODY, group=NOBODY, capture_output=True, timeout=30)
        assert read.returncode != 0 and not read.stdout


# -- a cache that cannot be written --------------------------------------------------------------------------

def test_a_full_disk_leaves_no_tmp_and_the_payload_stays_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    cache = PayloadCache(tmp_path / "payloads", ShotDatabase(tmp_path / "shots.sqlite"))

    def full(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(payload_module.os, "write", full)
    with caplog.at_level(logging.WARNING):
        for i in range(3):
            cache.put(f"{i}" * 64, {"x": np.arange(4)})
    assert not [p for p in (tmp_path / "payloads").rglob("*") if p.is_file()]
    assert cache.get("1" * 64) is not None and cache.db.cache_lookup("1" * 64) is None
    assert sum("cannot store payloads" in r.getMessage() for r in caplog.records) == 1


def test_an_unwritable_payload_folder_never_fails_a_frame(face_plate: Path, faces_dir: Path, dlib_models,
                                                          tmp_path: Path) -> None:
    """A real I/O failure (the payloads' shard folders cannot be made: a file sits where a folder should be)."""
    cache = tmp_path / "cache"
    payloads = cache / "payloads"
    payloads.mkdir(parents=True)
    for a in "0123456789abcdef":
        for b in "0123456789abcdef":
            (payloads / f"{a}{b}").write_bytes(b"")
    running = _server(cache, tmp_path / "models", dlib_models)
    try:
        assert _render_stream(f"127.0.0.1:{running.port}", face_plate, tmp_path / "o.exr", faces_dir) == "ok"
        assert _render_stream(f"127.0.0.1:{running.port}", face_plate, tmp_path / "p.exr", faces_dir) == "ok"
    finally:
        running.stop(grace=1.0)
    assert not [p for p in payloads.rglob("*.tmp")]
    assert same_bits(read_exr(tmp_path / "o.exr")[0], read_exr(tmp_path / "p.exr")[0]).all()


# -- corrupt payloads ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_sequence(faces_dir / "lp_d18.mp4", tmp_path_factory.mktemp("cache-clip"), 3, start=60)


def _run(address: str, clip: str, out: Path, faces_dir: Path) -> list[str]:
    """Analyse the clip and render it with the default temporal stabilisation; the frames' statuses."""
    jobs = [FrameJob(f, clip.replace("####", str(f)), str(out / f"o.{f}.exr")) for f in (1001, 1002, 1003)]
    out.mkdir(parents=True, exist_ok=True)
    with FaceBridgeClient(address, timeout=CALL_TIMEOUT) as client:
        session = client.open_session([faces_dir / "fr_alex_lacamoire.png"], shot="corrupt")
        assert all(not a.failed for a in client.analyse(session.session_id, jobs))
        return [f"{o.status}:{o.message}" if o.status == "failed" else o.status
                for o in client.process(session.session_id, jobs)]


def test_corrupt_payloads_are_misses_and_never_fail_the_next_runs(clip: str, faces_dir: Path, dlib_models,
                                                                   tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    outputs = []
    for run in range(3):
        running = _server(cache, tmp_path / "models", dlib_models)  # a fresh server per run, as a private one
        try:
            statuses = _run(f"127.0.0.1:{running.port}", clip, tmp_path / f"run{run}", faces_dir)
        finally:
            running.stop(grace=1.0)
        assert not [s for s in statuses if s.startswith("failed")], (run, statuses)
        outputs.append([read_exr(tmp_path / f"run{run}" / f"o.{f}.exr")[0] for f in (1001, 1002, 1003)])
        for npz in (cache / "payloads").rglob("*.npz"):  # flip bytes in every stored payload
            data = bytearray(npz.read_bytes())
            data[len(data) // 2:len(data) // 2 + 64] = bytes(64)
            npz.write_bytes(bytes(data))
    for later in outputs[1:]:
        assert all(same_bits(a, b).all() for a, b in zip(outputs[0], later)), "a corrupt payload changed pixels"


# -- a broken or unwritable cache dir at start ---------------------------------------------------------------

def _serve(cache: Path, tmp_path: Path, user: int | None = None, python: list[str] | None = None,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [*(python or [sys.executable]), "-m", "facebridge", "serve", "--port", "0", "--cache-dir", str(cache),
               "--models-dir", str(tmp_path / "models")]
    if user is not None:
        return subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                              env=env or dict(os.environ), cwd="/", user=user, group=user)
    return subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env=env or dict(os.environ), cwd="/")


def _one_line_exit_2(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_garbage_or_half_databases_are_one_line_at_start(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "shots.sqlite").write_bytes(os.urandom(8192))
    assert "shots.sqlite" in _one_line_exit_2(_serve(garbage, tmp_path))
    half = tmp_path / "half"
    db = ShotDatabase(half / "shots.sqlite")
    for frame in range(400):
        db.commit_frame("s", frame, "h" * 64, 0, [], [])
    db.close()
    con = sqlite3.connect(half / "shots.sqlite")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = (half / "shots.sqlite").read_bytes()
    (half / "shots.sqlite").write_bytes(data[: len(data) // 2])
    assert "move it aside" in _one_line_exit_2(_serve(half, tmp_path))


def test_serve_on_an_unwritable_cache_dir_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert "a-file" in _one_line_exit_2(_serve(blocker / "cache", tmp_path))
    python = _nobody_python()
    if python is None:
        pytest.skip("no second uid usable here for a read-only cache dir")
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="fb-readonly-", dir="/tmp"))  # (pytest's base folder is 0700)
    readonly = base / "readonly"
    readonly.mkdir()
    for folder in (base, readonly):
        os.chmod(folder, 0o755)
    paths = os.pathsep.join([str(REPO), str(REPO / "protos"), *__import__("site").getsitepackages()])
    env = {"PYTHONPATH": paths, "PATH": "/usr/bin:/bin", "HOME": "/", "FACEBRIDGE_TOKEN": "t" * 32,
           "XDG_CONFIG_HOME": "/nonexistent"}
    try:
        line = _one_line_exit_2(_serve(readonly, base, NOBODY, python, env))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert "not writable" in line and str(readonly) in line


# -- scratch folders -----------------------------------------------------------------------------------------

def _owned_scratch(pid: int) -> list[Path]:
    parent = scratch_parent() or Path("/tmp")
    found = []
    for entry in parent.glob("facebridge-*"):
        try:
            if (entry / "owner").read_text().split()[0] == str(pid):
                found.append(entry)
        except (OSError, IndexError):
            continue
    return found


def test_stale_scratch_folders_are_removed_at_start(dlib_models, tmp_path: Path) -> None:
    parent = scratch_parent() or Path("/tmp")
    dead_pid = subprocess.Popen(["/bin/true"])
    dead_pid.wait(10)
    dead = parent / "facebridge-test-dead"
    live = parent / "facebridge-test-live"
    for folder, pid in ((dead, dead_pid.pid), (live, os.getpid())):
        folder.mkdir(exist_ok=True)
        (folder / "owner").write_text(f"{pid} {scratch_module._start_time(pid)}".strip())
        (folder / "frame.exr").write_bytes(b"x" * 1024)
    try:
        running = _server(tmp_path / "cache", tmp_path / "models", dlib_models)
        running.stop(grace=1.0)
        assert not dead.exists() and live.exists()
    finally:
        import shutil

        shutil.rmtree(dead, ignore_errors=True)
        shutil.rmtree(live, ignore_errors=True)


def test_kill_9_and_failed_starts_leave_no_scratch_folder_behind(tmp_path: Path) -> None:
    process = subprocess.Popen([*CLI, "serve", "--port", "0", "--device", "cpu", "--cache-dir", str(tmp_path / "c"),
                                "--models-dir", str(tmp_path / "m")], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None and "serving on" in process.stdout.readline()
        left = _owned_scratch(process.pid)
        assert len(left) == 1
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    assert left[0].exists()  # kill -9: nothing could clean up ...
    scratch_module.remove_stale(scratch_parent())
    assert not left[0].exists()  # ... so the next start does
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "shots.sqlite").write_bytes(b"not a database" * 100)
    failed = subprocess.Popen([*CLI, "serve", "--port", "0", "--cache-dir", str(garbage), "--models-dir",
                               str(tmp_path / "m")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              stdin=subprocess.DEVNULL)
    assert failed.wait(120) == 2
    assert _owned_scratch(failed.pid) == []


@pytest.fixture(autouse=True)
def _bounded() -> Iterator[None]:
    started = time.monotonic()
    yield
    assert time.monotonic() - started < 300, "a cache probe ran for more than 5 minutes"
