"""Faults in a stream, answered: unwritable or full outputs, truncated and reused frames, a client that goes
away, and what the audit log records of them (against real servers on loopback, each probe bounded in time)."""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from facebridge_wire.chunking import MAX_CHUNK_BYTES
from facebridge_wire.v1 import facebridge_pb2 as pb
from probes import RawStub, astronaut_plate, astronaut_source, chunk, header, start, start_tight_server

from facebridge.client.errors import ClientError
from facebridge.client.grpc_client import FaceBridgeClient, FrameJob
from facebridge.client.input_buffer import InputFile

FRAMES = 3


@pytest.fixture(scope="module")
def faulty(dlib_models: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    running = start_tight_server(dlib_models, tmp_path_factory.mktemp("faults"), stream_idle_s=20.0)
    yield running
    running.stop(grace=1.0)


@pytest.fixture(scope="module")
def shot(faulty: Any) -> dict[str, Any]:
    """Small plates (256x256 astronaut, drifting) and a source photo, under the server's allowed root."""
    root = Path(faulty.service.audit.path).parent / "shot"
    root.mkdir(exist_ok=True)
    plates = [astronaut_plate(root / f"plate.{1001 + i}.exr", shift=4 * i) for i in range(10)]
    return {"root": root, "plates": plates, "source": astronaut_source(root / "source.png")}


@pytest.fixture()
def raw(faulty: Any) -> Iterator[RawStub]:
    stub = RawStub(f"127.0.0.1:{faulty.port}")
    yield stub
    stub.close()


def _audit(running: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(running.service.audit.path).read_text().splitlines()]


def _cli(faulty: Any, shot: dict[str, Any], output: str, report: Path, fsize: int | None = None) -> \
        subprocess.CompletedProcess[str]:
    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run(
        [sys.executable, "-m", "facebridge.cli", "process", "--server", f"127.0.0.1:{faulty.port}",
         "--transport", "stream", "--input", str(shot["root"] / "plate.####.exr"), "--frames", f"1001-{1000 + FRAMES}",
         "--output", output, "--source", str(shot["source"]), "--no-analyse", "--progress", "none",
         "--report", str(report)],
        capture_output=True, text=True, timeout=240, preexec_fn=limit, env=os.environ.copy())


@pytest.mark.parametrize("fault", ["not a folder", "disk full"])
def test_unwritable_output_with_stream_transport_is_reported(faulty: Any, shot: dict[str, Any], tmp_path: Path,
                                                             fault: str) -> None:
    """The CLI reports each frame it cannot write (file, frame, cause), writes its report, closes its
    session and exits 1, without a traceback. 'not a folder': the output folder is a file (a read-only folder
    refuses root too little to test as root); 'disk full': a file-size limit makes every write fail (EFBIG)."""
    if fault == "not a folder":
        (tmp_path / "blocked").write_text("a file where the output folder should be")
        output, fsize = str(tmp_path / "blocked" / "out.####.exr"), None
    else:
        output, fsize = str(tmp_path / "out" / "out.####.exr"), 48 * 1024
        (tmp_path / "out").mkdir()
    sessions_before = len(faulty.service.engine.sessions)
    report = tmp_path / "report.json"
    done = _cli(faulty, shot, output, report, fsize)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    data = json.loads(report.read_text())
    failed = [f for f in data["frames"] if f["status"] == "failed"]
    assert len(failed) == FRAMES, data["frames"]
    for frame in failed:
        assert frame["kind"] == "write"
        assert f"(frame {frame['frame']})" in frame["message"] and "cannot write the result" in frame["message"]
        assert "out." in frame["message"]
    assert len(faulty.service.engine.sessions) == sessions_before  # closed in the CLI's finally


def test_incomplete_final_frame_is_a_failed_result(raw: RawStub) -> None:
    sid = raw.open_session(shot="truncated")
    replies = list(raw.process(iter([start(sid), header(0, 1000, "plate.0007.exr", number=7),
                                     chunk(0, 0, b"x" * 500)]), timeout=10))
    (reply,) = replies
    assert reply.result.frame_id == 0 and reply.result.status.code == pb.FrameStatus.FAILED
    assert reply.result.status.kind == "incomplete"
    assert reply.result.status.message == "plate.0007.exr (frame 7): stream ended after 500 of 1000 bytes"


@pytest.mark.parametrize("second", ["pending", "completed"])
def test_reused_frame_id_is_refused(raw: RawStub, second: str) -> None:
    sid = raw.open_session(shot="reused")
    first = header(3, 100) if second == "pending" else header(3, 0)
    with pytest.raises(grpc.RpcError) as refused:
        list(raw.process(iter([start(sid), first, header(3, 100)]), timeout=10))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "frame id 3 used twice in this stream" in (refused.value.details() or "")


def test_client_going_away_stops_the_stream_quietly_and_is_audited(faulty: Any, shot: dict[str, Any],
                                                                   tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """With the path transport: the client cancels after its first result. The server starts no further
    frame (it used to go on writing every output), logs one INFO line and no ERROR or traceback, and the
    audit records the files and the frames that completed after the client left."""
    out = shot["root"] / f"cancel-{tmp_path.name}"
    out.mkdir()
    jobs = [FrameJob(1001 + i, str(p), str(out / f"out.{1001 + i}.exr")) for i, p in enumerate(shot["plates"])]
    caplog.set_level(logging.INFO)
    with FaceBridgeClient(f"127.0.0.1:{faulty.port}") as client:
        session = client.open_session([shot["source"]], shot="cancel")
        outcomes = client.process(session.session_id, jobs, use_paths=True)
        first = next(outcomes)
        assert first.frame_number == 1001
        assert isinstance(outcomes, types.GeneratorType)
        outcomes.close()  # cancels the call
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            records = [r for r in _audit(faulty) if r["event"] == "frames" and r["session"] == session.session_id]
            if records:
                break
            time.sleep(0.2)
        (record,) = records
        time.sleep(1.0)
        written = sorted(p.name for p in out.iterdir() if p.suffix == ".exr")
        client.close_session(session.session_id)
    # the server stops within a frame or two of learning it (it used to write all ten)
    assert len(written) <= 5, written
    assert record["paths"][0] == {"frame": 1001, "input": jobs[0].input_path, "output": jobs[0].output_path}
    # every file the server wrote is in the audit: reported to the client, or completed after it left (whether
    # a frame was still running when the server learnt of the cancel depends on timing: both cases are covered)
    late = record.get("completed_after_client_left", [])
    audited = set(record["frames"]) | set(record["failed_frames"]) | set(late)
    assert {f"out.{n}.exr" for n in audited} == set(written), (record, written)
    cancelled = [r for r in caplog.records if "cancelled or went away" in r.getMessage()]
    assert cancelled and all(r.levelno == logging.INFO and r.exc_info is None for r in cancelled)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], \
        [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_audit_records_previews_listings_and_refusals(faulty: Any, shot: dict[str, Any]) -> None:
    with FaceBridgeClient(f"127.0.0.1:{faulty.port}") as client:
        session = client.open_session([shot["source"]], shot="audited")
        client.preview(session.session_id, 1001, input_path=shot["plates"][0], max_side=64)
        client.list_shots()
        client.close_session(session.session_id)
    raw = RawStub(f"127.0.0.1:{faulty.port}")
    try:
        with pytest.raises(grpc.RpcError):
            raw.stub.Preview(pb.PreviewRequest(session_id="nope", frame_number=1, data=b"x"), timeout=5,
                             metadata=raw.metadata)
    finally:
        raw.close()
    records = _audit(faulty)
    previews = [r for r in records if r["event"] == "preview" and r["session"] == session.session_id]
    assert previews and previews[0]["input"] == str(shot["plates"][0]) and previews[0]["frame"] == 1001
    assert any(r["event"] == "list_shots" for r in records)
    refusals = [r for r in records if r["event"] == "refused" and r["method"] == "Preview"]
    assert refusals and refusals[-1]["code"] == "NOT_FOUND" and "no open session 'nope'" in refusals[-1]["message"]
    assert (os.stat(faulty.service.audit.path).st_mode & 0o777) == 0o600


def test_concurrent_streams_match_sequential_bits(faulty: Any, shot: dict[str, Any], tmp_path: Path) -> None:
    """What held before stays: clients at once give the same bytes as one after another (max_streams of
    them; the rest would be refused, not queued)."""
    plates = shot["plates"][:2]

    def run(folder: Path) -> list[bytes]:
        folder.mkdir()
        with FaceBridgeClient(f"127.0.0.1:{faulty.port}") as client:
            session = client.open_session([shot["source"]], shot="bits")
            jobs = [FrameJob(1001 + i, str(p), str(folder / f"o.{i}.exr")) for i, p in enumerate(plates)]
            outcomes = list(client.process(session.session_id, jobs))
            client.close_session(session.session_id)
        assert not [o for o in outcomes if o.failed]
        return [Path(j.output_path).read_bytes() for j in jobs]

    sequential = run(tmp_path / "seq")
    results: dict[int, list[bytes]] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, run(tmp_path / f"c{i}")))
               for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [results[i] for i in range(3)] == [sequential] * 3


@pytest.mark.parametrize("change", ["grown", "rewritten"])
def test_an_input_changed_while_it_is_sent_fails_the_call_naming_file_and_frame(
        faulty: Any, shot: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    """The stream transport reads a frame while sending it; a file written to meanwhile (after its first chunk
    left) fails the call with one line naming the file and the frame, after the frames before it are
    reported. Its last chunk never leaves, so the server processes nothing of it and nothing is written."""
    big = shot["root"] / f"changing-{change}.exr"  # two chunks; never decoded, the frame must not complete
    big.write_bytes(os.urandom(MAX_CHUNK_BYTES + 1000))
    original = InputFile.chunks

    def changing(self: InputFile, *args: Any) -> Iterator[bytes]:
        for count, message in enumerate(original(self, *args)):
            yield message
            if count == 0 and self.path == str(big):
                with open(big, "r+b" if change == "rewritten" else "ab") as handle:
                    handle.write(b"\0" * 100)  # rewritten: over the start of the chunk already sent

    monkeypatch.setattr(InputFile, "chunks", changing)
    out = tmp_path / "out"
    jobs = [FrameJob(1001, str(shot["plates"][0]), str(out / "o.1001.exr")),
            FrameJob(1002, str(big), str(out / "o.1002.exr"))]
    with FaceBridgeClient(f"127.0.0.1:{faulty.port}") as client:
        session = client.open_session([shot["source"]], shot="changing")
        outcomes = client.process(session.session_id, jobs)
        first = next(outcomes)
        with pytest.raises(ClientError) as failed:
            next(outcomes)
        client.close_session(session.session_id)
    assert first.frame_number == 1001 and not first.failed
    message = str(failed.value)
    assert "\n" not in message and message.startswith(f"{big} (frame 1002): changed while it was being sent"), message
    assert sorted(p.name for p in out.iterdir()) == ["o.1001.exr"]  # nothing of frame 1002, no temporary file
