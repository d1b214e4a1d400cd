"""The shot analysis travels as a file (issue 14): ``analyse --analysis-out`` writes it once, ``process
--analysis`` renders chunks of the shot from it on fresh private servers (as farm machines would), bit-identical
to one run over the whole shot; bad files are refused in one line; the server validates what it imports."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import FACES_DIR, make_sequence, read_exr, same_bits, write_exr

from facebridge import analysis_file
from facebridge.client.errors import ClientError
from facebridge.client.grpc_client import FaceBridgeClient

pytestmark = pytest.mark.skipif(not FACES_DIR.is_dir(), reason="needs the real faces in ../shared/data/faces")

CLI = [sys.executable, "-m", "facebridge"]
FRAMES = list(range(1001, 1009))
SHOT = "fb-analysis-file-sh010"
CHUNKS = ("1001-1003", "1004-1006", "1007-1008")


def _cli(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + [*args, "--progress", "none"], capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL, env={**os.environ, "XDG_CACHE_HOME": str(home / "xdg")})


def _errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr without the informational lines (where the token came from, the private server stopping)."""
    return [line for line in result.stderr.splitlines()
            if line.startswith("facebridge: error") or "Traceback" in line]


@pytest.fixture(scope="module")
def shot(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """An 8-frame clip, one plain ``process`` over the whole shot, and ``analyse --analysis-out`` of it."""
    home = tmp_path_factory.mktemp("analysis_file")
    clip = make_sequence(FACES_DIR / "lp_d18.mp4", home / "clip", len(FRAMES), start=40)
    source = str(FACES_DIR / "fr_obama.jpg")
    whole = _cli(["process", "--source", source, "--input", clip, "--output", str(home / "whole" / "o.####.exr"),
                  "--cache-dir", str(home / "cache_whole"), "--shot", SHOT], home)
    assert whole.returncode == 0, whole.stderr
    path = home / "files" / f"{SHOT}.fbanalysis"
    analysed = _cli(["analyse", "--input", clip, "--shot", SHOT, "--analysis-out", str(path),
                     "--cache-dir", str(home / "cache_analyse"), "--report", str(home / "analyse.json")], home)
    assert analysed.returncode == 0, analysed.stderr
    return {"home": home, "clip": clip, "source": source, "file": path}


def _render(shot: dict[str, object], frames: str, out: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    home = shot["home"]
    assert isinstance(home, Path)
    return _cli(["process", "--source", str(shot["source"]), "--input", str(shot["clip"]), "--output",
                 str(out / "o.####.exr"), "--cache-dir", str(cache), "--shot", SHOT, "--frames", frames,
                 "--analysis", str(shot["file"]), *extra], home)


def test_chunks_on_fresh_servers_in_any_order_are_bit_identical_to_one_run(shot: dict[str, object]) -> None:
    home, path = shot["home"], shot["file"]
    assert isinstance(home, Path) and isinstance(path, Path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    report = json.loads((home / "analyse.json").read_text())["analysis"]["analysis_file"]
    assert report["frames"] == len(FRAMES) and report["path"] == str(path)
    for chunk in reversed(CHUNKS):  # each chunk on a fresh private server with its own empty cache dir
        result = _render(shot, chunk, home / "chunks", home / f"cache_{chunk}", "--report", str(home / f"{chunk}.json"))
        assert result.returncode == 0, result.stderr
        run = json.loads((home / f"{chunk}.json").read_text())
        assert "analysis" not in run and run["analysis_file"]["sha256"] == analysis_file.read(path).sha256
        assert all(face["track"] >= 0 for frame in run["frames"] for face in frame["faces"])  # from the analysis
    rerun = _render(shot, CHUNKS[1], home / "rerun", home / "cache_rerun", "--no-analyse")
    assert rerun.returncode == 0, rerun.stderr
    again = _render(shot, CHUNKS[1], home / "again", home / f"cache_{CHUNKS[1]}")  # re-run on its warm cache
    assert again.returncode == 0, again.stderr
    for frame in FRAMES:
        whole, _ = read_exr(home / "whole" / f"o.{frame:04d}.exr")
        chunked, _ = read_exr(home / "chunks" / f"o.{frame:04d}.exr")
        assert whole.shape == chunked.shape and same_bits(whole, chunked).all(), f"frame {frame} differs"
    for frame in range(1004, 1007):
        whole, _ = read_exr(home / "whole" / f"o.{frame:04d}.exr")
        for folder in ("rerun", "again"):
            rendered, _ = read_exr(home / folder / f"o.{frame:04d}.exr")
            assert same_bits(whole, rendered).all(), f"frame {frame} of the re-run ({folder}) differs"
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before, "a render wrote the analysis file"


def test_unusable_analysis_files_are_refused_in_one_line_before_any_server(shot: dict[str, object],
                                                                          tmp_path: Path) -> None:
    path = shot["file"]
    assert isinstance(path, Path)
    corrupt = tmp_path / "corrupt.fbanalysis"
    data = bytearray(path.read_bytes())
    data[data.index(b'"content_hash":"') + 20] ^= 0x01  # one hex digit changed: still JSON, checksum wrong
    corrupt.write_bytes(bytes(data))
    cut_short = tmp_path / "cut.fbanalysis"
    cut_short.write_bytes(path.read_bytes()[:1000])
    cases = [
        (tmp_path / "missing.fbanalysis", SHOT, "no such file"),
        (path, "sh020", f"is for shot '{SHOT}', not 'sh020'"),
        (corrupt, SHOT, "checksum"),
        (cut_short, SHOT, "not JSON"),
    ]
    for file, shot_id, cause in cases:
        result = _cli(["process", "--source", str(shot["source"]), "--input", str(shot["clip"]), "--output",
                       str(tmp_path / "out" / "o.####.exr"), "--cache-dir", str(tmp_path / "cache"),
                       "--shot", shot_id, "--frames", "1001", "--analysis", str(file)], tmp_path)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # nothing else: no server started
        line = result.stderr.strip()
        assert str(file) in line and f"'{shot_id}'" in line and cause in line, line
    refused = _render(shot, "1001", tmp_path / "out", tmp_path / "cache", "--analyse-range", "1001-1008")
    assert refused.returncode == 2 and "--analyse-range" in refused.stderr
    other = _render(shot, "1001", tmp_path / "out", tmp_path / "cache", "--keyframe-interval", "3")
    assert other.returncode == 2 and "--keyframe-interval 8, not 3" in other.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_changed_plates_are_refused_in_one_line_naming_file_and_shot(shot: dict[str, object], tmp_path: Path) -> None:
    clip = Path(str(shot["clip"])).parent
    changed = tmp_path / "clip"
    shutil.copytree(clip, changed)
    pixels, _ = read_exr(changed / "plate.1002.exr")  # the neighbour of the frame rendered
    write_exr(changed / "plate.1002.exr", pixels * np.float32(0.9), ("R", "G", "B", "A"))
    result = _cli(["process", "--source", str(shot["source"]), "--input", str(changed / "plate.####.exr"),
                   "--output", str(tmp_path / "out" / "o.####.exr"), "--cache-dir", str(tmp_path / "cache"),
                   "--shot", SHOT, "--frames", "1001", "--analysis", str(shot["file"])], tmp_path)
    assert result.returncode == 2, result.stderr
    errors = _errors(result)
    assert len(errors) == 1, result.stderr
    assert str(shot["file"]) in errors[0] and f"'{SHOT}'" in errors[0] and "plate.1002.exr" in errors[0], errors[0]
    assert not (tmp_path / "out" / "o.1001.exr").exists()


def _document(path: Path) -> dict[str, object]:
    return dict(json.loads(path.read_text()))


def _tampered(document: dict[str, object], change) -> bytes:
    copy = json.loads(json.dumps(document))
    change(copy)
    return analysis_file.encode(copy)


def test_the_server_round_trips_the_file_and_refuses_hostile_ones(shot: dict[str, object],
                                                                   client: FaceBridgeClient) -> None:
    path = shot["file"]
    assert isinstance(path, Path)
    data = path.read_bytes()
    document = _document(path)
    session = client.open_session([], shot=SHOT, keyframe_interval=8)
    try:
        imported = client.import_analysis(session.session_id, data)
        assert imported["shot"] == SHOT and imported["frames"] == len(FRAMES)
        assert (imported["first_frame"], imported["last_frame"]) == (FRAMES[0], FRAMES[-1])
        assert client.export_analysis(SHOT) == data  # export -> import -> export: the same bytes
        nan = base64.b64encode(np.full((68, 2), np.nan, "<f4").tobytes()).decode()
        hostile = {
            "another shot": _tampered(document, lambda d: d.update(shot="sh020")),
            "other settings": _tampered(document, lambda d: d["analysis_settings"].update(keyframe_interval=3)),
            "not finite": _tampered(document, lambda d: d["frames"][0]["faces"][0].update(landmarks=nan)),
            "short landmarks": _tampered(document, lambda d: d["frames"][0]["faces"][0].update(landmarks="AAAA")),
            "unknown track": _tampered(document, lambda d: d["frames"][0]["faces"][0].update(track=99)),
            "frames out of order": _tampered(document, lambda d: d["frames"].reverse()),
            "wrong types": _tampered(document, lambda d: d["frames"][0].update(cut="0")),
            "not a list": _tampered(document, lambda d: d.update(frames={"1001": 1})),
            "garbage": os.urandom(4096),
            "deep nesting": b"[" * 100000,
            "bad checksum": data.replace(b'"cut":0', b'"cut":1', 1),
        }
        for name, bad in hostile.items():
            with pytest.raises(ClientError) as refused:
                client.import_analysis(session.session_id, bad)
            assert "internal" not in str(refused.value), f"{name}: {refused.value}"
        assert client.export_analysis(SHOT) == data, "a refused file changed the shot's analysis"
        assert client.server_info().server_version
    finally:
        client.close_session(session.session_id)
    with pytest.raises(ClientError, match="no analysis of shot"):
        client.export_analysis("fb-analysis-file-no-such-shot")


def test_format_checks_itself() -> None:
    document = {"shot": "a", "analysis_settings": {"keyframe_interval": 8}, "frames": [], "tracks": []}
    data = analysis_file.encode(document)
    assert analysis_file.encode(analysis_file.decode(data)) == data
    decoded = analysis_file.decode(data)
    assert decoded["format"] == analysis_file.FORMAT and decoded["format_version"] == analysis_file.VERSION
    newer = json.loads(data)
    newer["format_version"] = analysis_file.VERSION + 1
    with pytest.raises(analysis_file.AnalysisFileError, match="newer facebridge"):
        analysis_file.decode(json.dumps(newer).encode())
    with pytest.raises(analysis_file.AnalysisFileError, match="not JSON|does not allow"):
        analysis_file.decode(data.replace(b'"frames":[]', b'"frames":[NaN]'))
    with pytest.raises(analysis_file.AnalysisFileError, match="not a shot-analysis file"):
        analysis_file.decode(b'{"format": "something else"}')
