"""The host-agnostic parts of the host plugins (host_plugins/common) and ``facebridge install``.

These run inside Nuke's and Resolve's interpreters, so they are checked against the real client they
mirror: the knob set against ``RenderParams``, the sidecar argv against the real ``facebridge process``
parser, the event parser against the real progress writer, presets against ``params.save_preset``.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import fields
from pathlib import Path

import pytest
from support import REPO

from facebridge import schema
from facebridge.client.options import add_analyse_arguments, add_process_arguments, render_params
from facebridge.client.params import load_preset as client_load_preset
from facebridge.client.params import save_preset as client_save_preset
from facebridge.settings import RenderParams
from host_plugins.common import command, frames, knobs, presets, progress, resolve_render, sequence
from host_plugins.common.frames import FrameRange, FrameRangeError
from host_plugins.common.knobs import SettingsError

HOST_FILES = sorted([*(REPO / "host_plugins" / "common").glob("*.py"), *(REPO / "host_plugins" / "nuke").rglob("*.py"),
                     *(REPO / "host_plugins" / "resolve").rglob("*.py"), REPO / "host_plugins" / "__init__.py",
                     *(REPO / "facebridge" / name for name in ("__init__.py", "schema.py", "tokens.py", "presets.py", "files.py"))])
"""Everything a host's own interpreter loads: the plugins, their shared code and the stdlib-only facebridge modules."""


# --- knobs <-> RenderParams -----------------------------------------------------------------------


def test_knob_set_is_the_schemas() -> None:
    assert list(knobs.PARAM_DEFAULTS) == [f.name for f in fields(RenderParams)]
    assert knobs.PARAM_DEFAULTS == RenderParams().as_dict()
    assert {k.field for k in knobs.PARAM_KNOBS} == set(knobs.PARAM_DEFAULTS)
    assert knobs.REGION_NAMES is schema.REGION_NAMES and knobs.MODES is schema.MODES
    assert knobs.params_from_knobs({}) == RenderParams().as_dict()   # a fresh node = the defaults


@pytest.mark.parametrize("params", [
    RenderParams(),
    RenderParams(mode="swap+restore", blend=0.35, regions={"mouth": 0.0, "eyes": 0.25}, feather=0.1, erode=-0.2,
                 grain=0.6, colour_match="histogram", smoothing=0.0, keyframe_interval=3, face="track:2",
                 colorspace="ACEScg", stabilise=0.0, flow_threshold=0.1, swapper="inswapper_128",
                 restorer="gpen_bfr_512", parser="none", allow_unverified=True, precision="fp16"),
    RenderParams(mode="restore", regions={n: 0.5 for n in knobs.REGION_NAMES}, face="ref:/faces/a b.png"),
])
def test_params_round_trip_through_knobs_and_the_sidecar_argv(params: RenderParams, tmp_path: Path) -> None:
    values = knobs.knobs_from_params(params.as_dict())
    assert knobs.params_from_knobs(values) == params.as_dict()
    request = command.RenderRequest(params.as_dict(), str(tmp_path / "in.####.exr"), str(tmp_path / "out.####.exr"),
                                    FrameRange(1001, 1010), FrameRange(990, 1020), ["/faces/src.jpg"],
                                    "127.0.0.1:50051", "nuke-abc", str(tmp_path / "r.json"))
    argv = command.process_argv(["facebridge"], request)
    parser = argparse.ArgumentParser()
    add_process_arguments(parser)
    args = parser.parse_args(argv[2:])
    assert render_params(args) == params        # the real CLI reads back exactly the knobs
    assert (args.input, args.output, args.frames, args.analyse_range) == (request.input_pattern, request.output_pattern,
                                                                          "1001-1010", "990-1020")
    assert args.source == ["/faces/src.jpg"] and args.server == "127.0.0.1:50051" and args.progress == "json"
    assert args.shot == "nuke-abc" and args.report == str(tmp_path / "r.json")


def _farm_parser() -> argparse.ArgumentParser:
    """The real ``facebridge farm`` parser (as ``facebridge.cli`` builds it)."""
    from facebridge.farm.command import add_farm_parser

    parser = argparse.ArgumentParser(prog="facebridge")
    add_farm_parser(parser.add_subparsers(dest="command"))
    return parser


@pytest.mark.parametrize("params", [
    RenderParams(),
    RenderParams(mode="swap+restore", blend=0.35, regions={"mouth": 0.0, "eyes": 0.25}, feather=0.1, erode=-0.2,
                 grain=0.6, colour_match="histogram", smoothing=0.0, keyframe_interval=3, face="track:2",
                 colorspace="ACEScg", stabilise=0.0, flow_threshold=0.1, swapper="inswapper_128",
                 restorer="gpen_bfr_512", parser="none", allow_unverified=True, precision="fp16"),
])
def test_farm_argv_is_the_process_render_as_a_farm_job(params: RenderParams, tmp_path: Path) -> None:
    """``farm_argv`` carries what ``process_argv`` does for the same request: the real ``facebridge farm`` parser
    reads back exactly the knobs, and the job it builds renders those settings over those frames."""
    from facebridge.farm.command import build_job

    for frame in range(1001, 1011):
        (tmp_path / ("in.%d.exr" % frame)).write_bytes(b"")
    request = command.RenderRequest(params.as_dict(), str(tmp_path / "in.####.exr"), str(tmp_path / "out.####.exr"),
                                    FrameRange(1001, 1010), FrameRange(1001, 1010), ["/faces/src.jpg"],
                                    "127.0.0.1:50051", "nuke-abc", str(tmp_path / "r.json"))
    argv = command.farm_argv(["facebridge"], request, "openjd", 4, bundle_dir=str(tmp_path / "bundle"))
    assert argv[:3] == ["facebridge", "farm", "openjd"]
    args = _farm_parser().parse_args(argv[1:])
    assert render_params(args) == params        # every setting explicit, read back exactly
    assert (args.input, args.output, args.frames, args.analyse_range) == (request.input_pattern, request.output_pattern,
                                                                          "1001-1010", "1001-1010")
    assert args.source == ["/faces/src.jpg"] and args.server == "127.0.0.1:50051" and args.shot == "nuke-abc"
    assert (args.chunk, args.bundle, args.report, args.cli) == (4, str(tmp_path / "bundle"), None, None)
    shared = command.process_argv(["facebridge"], request)[2:-8]   # less --progress, --server, --shot, --report
    assert argv[3:3 + len(shared)] == shared, "the same input, frames, sources and settings as process"
    job = build_job(args)
    assert job.settings == tuple(command.param_args(params.as_dict())) and job.chunk == 4
    assert job.frames == tuple(range(1001, 1011)) and job.shot == "nuke-abc"

    cue = command.farm_argv(["fb"], request._replace(server="", shot=""), "opencue", "2", show="sh", user="me",
                            dry_run=True, farm_cli="/opt/fb/bin/facebridge")
    args = _farm_parser().parse_args(cue[1:])
    assert (args.scheduler, args.chunk, args.show, args.user, args.dry_run) == ("opencue", 2, "sh", "me", True)
    assert args.cli == "/opt/fb/bin/facebridge" and args.server is None and not args.shot
    assert render_params(args) == params


def test_farm_argv_refuses_what_a_farm_job_cannot_take() -> None:
    request = command.RenderRequest({"mode": "restore"}, "in.####.exr", "out.####.exr", FrameRange(1, 3))
    with pytest.raises(SettingsError, match="needs at least one source image"):   # the same check as process
        command.farm_argv(["fb"], request._replace(params={"mode": "swap"}), "openjd", 10, bundle_dir="b")
    with pytest.raises(SettingsError, match="scheduler must be one of openjd, opencue, got 'deadline'"):
        command.farm_argv(["fb"], request, "deadline")
    with pytest.raises(SettingsError, match="needs a bundle folder"):
        command.farm_argv(["fb"], request, "openjd")
    for bad in (0, -2, 2.5, "ten", "", "inf", "nan"):
        with pytest.raises(SettingsError, match="positive whole number"):
            command.farm_argv(["fb"], request, "opencue", bad)
    assert command.farm_chunk(10.0) == 10 and command.farm_chunk(" 3 ") == 3
    with pytest.raises(SettingsError, match="'blend' must be within 0..1"):
        command.farm_argv(["fb"], request._replace(params={"mode": "restore", "blend": 2}), "opencue")


def test_regions_at_full_weight_are_left_out_and_bad_knobs_are_named() -> None:
    values = knobs.knobs_from_params({"regions": {"eyes": 1.0, "nose": 0.5}})
    assert values["region_eyes"] == 1.0 and values["region_nose"] == 0.5
    assert knobs.params_from_knobs(values)["regions"] == {"nose": 0.5}
    with pytest.raises(SettingsError, match="^setting 'blend' must be within 0..1, got 1.2$"):
        knobs.params_from_knobs({"blend": 1.2})
    with pytest.raises(SettingsError, match="^setting 'mode' must be one of swap, restore, swap\\+restore, got 'morph'$"):
        knobs.params_from_knobs({"mode": "morph"})
    with pytest.raises(SettingsError, match="^setting 'keyframe_interval' must be a whole number, got 2.5$"):
        knobs.params_from_knobs({"keyframe_interval": 2.5})
    with pytest.raises(SettingsError, match="unknown setting"):
        knobs.knobs_from_params({"sharpness": 1})
    with pytest.raises(SettingsError, match="unknown region"):
        knobs.knobs_from_params({"regions": {"ears": 0.1}})
    assert knobs.params_from_knobs({"allow_unverified": "true", "blend": "0.5"})["blend"] == 0.5


def test_sidecar_argv_without_server_or_sources(tmp_path: Path) -> None:
    restore = command.RenderRequest({"mode": "restore"}, "in.####.exr", "out.####.exr", FrameRange(1, 3))
    argv = command.process_argv(["fb"], restore)
    assert "--server" not in argv and "--source" not in argv and "--analyse-range" not in argv
    with pytest.raises(SettingsError, match="needs at least one source image"):
        command.process_argv(["fb"], restore._replace(params={"mode": "swap"}))
    analyse = command.analyse_argv(["fb"], "in.####.exr", FrameRange(1, 9), 4, server="h:1", shot="s")
    parser = argparse.ArgumentParser()
    add_analyse_arguments(parser)
    args = parser.parse_args(analyse[2:])
    assert (args.frames, render_params(args).keyframe_interval, args.server, args.shot) == ("1-9", 4, "h:1", "s")
    assert command.split_sources("a.png\n b.jpg ; c.png\n\n") == ["a.png", "b.jpg", "c.png"]


def test_cli_comes_from_the_environment_or_path(tmp_path: Path) -> None:
    assert command.resolve_cli({"FACEBRIDGE_CLI": '["/py", "-m", "facebridge"]'}) == ["/py", "-m", "facebridge"]
    assert command.resolve_cli({"FACEBRIDGE_CLI": "/opt/fb/bin/facebridge"}) == ["/opt/fb/bin/facebridge"]
    script = tmp_path / "facebridge"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert command.resolve_cli({"PATH": str(tmp_path)}) == [str(script)]
    with pytest.raises(command.CliNotFound, match="facebridge install"):
        command.resolve_cli({"PATH": str(tmp_path / "nowhere")})
    with pytest.raises(command.CliNotFound, match="JSON"):
        command.resolve_cli({"FACEBRIDGE_CLI": "[broken"})
    assert json.loads(command.encode_cli(["a b", "c"])) == ["a b", "c"]


def test_sidecar_does_not_inherit_the_host_interpreters_python_path() -> None:
    host = {"PATH": "/bin", "PYTHONPATH": "/nuke/lib/python3.7/site-packages", "PYTHONHOME": "/nuke",
            "FACEBRIDGE_CLI": "fb"}
    assert command.sidecar_env(host) == {"PATH": "/bin", "FACEBRIDGE_CLI": "fb"}
    assert command.sidecar_env({**host, "FACEBRIDGE_CLI_PYTHONPATH": "/fb/lib"})["PYTHONPATH"] == "/fb/lib"


# --- presets --------------------------------------------------------------------------------------


def test_presets_are_the_clients_format(tmp_path: Path) -> None:
    look = RenderParams(blend=0.7, regions={"mouth": 0.25}, colour_match="none", precision="bf16")
    client_save_preset(tmp_path / "client.json", look, name="look")
    params, name = presets.load_preset(str(tmp_path / "client.json"))
    assert params == look.as_dict() and name == "look"
    presets.save_preset(str(tmp_path / "host.json"), look.as_dict(), name="from nuke")
    assert client_load_preset(tmp_path / "host.json") == look
    (tmp_path / "bad.json").write_text(json.dumps({"facebridge_preset": 1, "blend": 3}))
    with pytest.raises(SettingsError, match="bad.json: setting 'blend' must be within 0..1, got 3$"):
        presets.load_preset(str(tmp_path / "bad.json"))
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(SettingsError, match="not a facebridge preset"):
        presets.load_preset(str(tmp_path / "other.json"))


# --- progress events and the sidecar --------------------------------------------------------------


def test_event_parser_reads_what_the_client_writes() -> None:
    from facebridge.client.grpc_client import AnalyseOutcome, FrameOutcome
    from facebridge.client.progress import Progress

    out = io.StringIO()
    writer = Progress("json", 3, out=out, err=io.StringIO(), analyse_total=2)
    writer.start("127.0.0.1:1")
    model = progress.ProgressModel()
    seen: list[progress.ProgressEvent] = []

    def feed() -> None:
        for line in out.getvalue().splitlines()[len(seen):]:
            event = progress.parse_event(line)
            assert event is not None, line
            seen.append(event)
            model.update(event)

    feed()
    assert model.total == 3 and model.percent == 0
    for frame in (1, 2):
        writer.analysed(AnalyseOutcome(frame, "ok", "", "", 0, frame == 1, False, [0]))
    feed()
    assert model.percent == 30 and model.message == "analysing shot: 2/2 frames"
    writer.frame(FrameOutcome(1, "ok", "", "", "/in.1.exr", "/out.1.exr"))
    writer.frame(FrameOutcome(2, "failed", "decode", "frame 2: bad", "/in.2.exr", ""))
    feed()
    assert model.done == 2 and model.failed == 1 and model.percent == 77 and model.message.endswith("1 failed")
    writer.frame(FrameOutcome(3, "warning", "", "no face", "/in.3.exr", "/out.3.exr"))
    writer.end()
    feed()
    assert model.finished and model.percent == 100 and model.warnings == 1
    assert model.outputs == {1: "/out.1.exr", 3: "/out.3.exr"}
    assert model.message.startswith("3 frames: 1 ok, 1 warnings, 1 failed in ")
    assert progress.parse_event("facebridge: note: x") is None and progress.parse_event("{broken") is None
    assert progress.parse_event('{"event": "other"}') is None


def _script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "sidecar.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def test_run_sidecar_reports_events_errors_and_exit_status(tmp_path: Path) -> None:
    argv = _script(tmp_path, """
        import json, sys
        print("not json")
        print(json.dumps({"event": "start", "total": 2, "server": "x"}), flush=True)
        print("facebridge: error: /p/plate.0002.exr (frame 2): truncated", file=sys.stderr, flush=True)
        print(json.dumps({"event": "frame", "frame": 1, "status": "ok", "done": 1, "total": 2, "output": "/o.1.exr"}))
        print(json.dumps({"event": "frame", "frame": 2, "status": "failed", "done": 2, "total": 2}))
        print(json.dumps({"event": "end", "total": 2, "ok": 1, "warnings": 0, "failed": 1, "elapsed_s": 0.5}))
        sys.exit(1)
    """)
    events = []
    result = progress.run_sidecar(argv, lambda e, m: events.append((e.kind, m.percent)))
    assert [k for k, _ in events] == ["start", "frame", "frame", "end"] and events[-1][1] == 100
    assert result.returncode == 1 and not result.ok and not result.cancelled
    assert result.errors == ["/p/plate.0002.exr (frame 2): truncated"]
    assert result.model.outputs == {1: "/o.1.exr"}
    assert result.describe() == ("2 frames: 1 ok, 0 warnings, 1 failed in 0.5 s; first error: "
                                 "/p/plate.0002.exr (frame 2): truncated")
    fatal = progress.run_sidecar(_script(tmp_path, """
        import sys
        print("facebridge: error: OpenSession: source 'x.png': no face found", file=sys.stderr)
        sys.exit(2)
    """))
    assert fatal.describe() == "error: OpenSession: source 'x.png': no face found"
    with pytest.raises(OSError):
        progress.run_sidecar([str(tmp_path / "missing-command")])


def test_cancel_kills_the_sidecar_and_what_it_started(tmp_path: Path) -> None:
    """Cancel stops the sidecar's whole process group: the private server it started goes too."""
    child_pid = tmp_path / "child.pid"
    argv = _script(tmp_path, f"""
        import json, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(child_pid)!r}, "w").write(str(child.pid))
        print(json.dumps({{"event": "start", "total": 5, "server": "x"}}), flush=True)
        time.sleep(60)
    """)
    started = time.monotonic()
    result = progress.run_sidecar(argv, is_cancelled=lambda: child_pid.exists() and time.monotonic() - started > 0.5)
    assert result.cancelled and result.returncode is None and result.describe() == "cancelled"
    assert time.monotonic() - started < 20
    pid = int(child_pid.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


# --- sequences and frames -------------------------------------------------------------------------


def test_sequence_naming(tmp_path: Path) -> None:
    assert sequence.split_pattern("/a/plate.####.exr") == ("/a/plate.", 4, ".exr")
    assert sequence.split_pattern("/a/plate.%06d.exr") == ("/a/plate.", 6, ".exr")
    assert sequence.frame_path("p.%d.exr", 7) == "p.7.exr" and sequence.frame_path("p.####.exr", -3) == "p.-003.exr"
    for bad in ("plate.exr", "a.##.b.##.exr"):
        with pytest.raises(sequence.SequenceError):
            sequence.split_pattern(bad)
    seq = sequence.parse_bracket_path("/shots/sh010/plate.[0998-1002].exr")
    assert seq == sequence.FrameSequence("/shots/sh010/plate.", 4, ".exr", 998, 1002)
    assert seq.hashes == "/shots/sh010/plate.####.exr" and seq.printf == "/shots/sh010/plate.%04d.exr"
    assert seq.path(999) == "/shots/sh010/plate.0999.exr" and seq.length == 5
    assert sequence.parse_bracket_path("/shots/A001.mov") is None
    assert sequence.clip_stem("plate.[1001-1100].exr") == "plate" and sequence.clip_stem("A001 C003.mov") == "A001_C003"
    assert sequence.safe_name("  ../..  ") == "item" and sequence.safe_name("Reel 1: v2") == "Reel_1_v2"
    assert sequence.shot_id("nuke", "/a/b") == sequence.shot_id("nuke", "/a/b") != sequence.shot_id("nuke", "/a/c")
    folders = sequence.node_folders(str(tmp_path), "Face Bridge1")
    assert folders.result_pattern == str(tmp_path / "Face_Bridge1.####.exr")
    assert folders.plate_pattern == str(tmp_path / "work" / "plate.####.exr")
    assert sequence.default_output_dir("/shots/sh010/comp_v003.nk", "FaceBridge1") == \
        "/shots/sh010/facebridge/comp_v003/FaceBridge1"


def test_find_sequence_takes_whatever_numbering_a_host_rendered(tmp_path: Path) -> None:
    for frame in (86421, 86422, 86423):
        (tmp_path / ("Reel_1_inout_%08d.exr" % frame)).write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    found = sequence.find_sequence(str(tmp_path), "Reel_1_inout")
    assert (found.hashes, found.first, found.last) == (str(tmp_path / "Reel_1_inout_########.exr"), 86421, 86423)
    (tmp_path / "Reel_1_inout_00086425.exr").write_bytes(b"")
    with pytest.raises(sequence.SequenceError, match="missing from the sequence: 86424"):
        sequence.find_sequence(str(tmp_path), "Reel_1_inout")
    (tmp_path / "Reel_1_inout_00086424.exr").write_bytes(b"")
    (tmp_path / "Reel_1_inout.0001.exr").write_bytes(b"")
    with pytest.raises(sequence.SequenceError, match="several sequences"):
        sequence.find_sequence(str(tmp_path), "Reel_1_inout")
    with pytest.raises(sequence.SequenceError, match="no x"):
        sequence.find_sequence(str(tmp_path), "x")


def test_frame_ranges() -> None:
    assert FrameRange.parse("1001-1024") == (1001, 1024) and FrameRange.parse(" 7 ") == (7, 7)
    assert FrameRange.parse("-5--1") == (-5, -1) and FrameRange.parse("-3-4").length == 8
    with pytest.raises(FrameRangeError, match="empty"):
        FrameRange.parse("10-5")
    shot = FrameRange(1001, 1100)
    assert frames.chunk_of(shot, None, None) == shot and frames.chunk_of(shot, 1010, None) == (1010, 1100)
    with pytest.raises(FrameRangeError, match="outside the node's frame range 1001-1100"):
        frames.chunk_of(shot, 990, 1010)
    assert 1005 in shot and 1101 not in shot and shot.intersect(FrameRange(1200, 1300)) is None


def test_resolve_record_frame_arithmetic() -> None:
    assert frames.item_record_range(86410, 3) == (86410, 86412)
    with pytest.raises(FrameRangeError):
        frames.item_record_range(86410, 0)
    # marks count from the timeline start (RRM 20.3.2 example: 'in': 0); the {0, 0} placeholder is no marks
    assert frames.marks_record_range({"video": {"in": 21, "out": 23}, "audio": {}}, 86400, 86500) == (86421, 86423)
    assert frames.marks_record_range({"video": {"in": 0, "out": 9}}, 86400, 86500) == (86400, 86409)
    assert frames.marks_record_range({"video": {"in": 21}}, 86400, 86500) is None
    assert frames.marks_record_range({}, 86400, 86500) is None
    placeholder = {"video": {"in": 0, "out": 0}, "audio": {"in": 0, "out": 0}}
    assert frames.marks_placeholder(placeholder) and frames.marks_record_range(placeholder, 86400, 86500) is None
    # a long timeline: marks that would fit as absolute frames are still relative
    assert frames.marks_record_range({"video": {"in": 86410, "out": 86420}}, 0, 200000) == (86410, 86420)
    assert frames.marks_record_range({"video": {"in": 100, "out": 110}}, 50, 200000) == (150, 160)
    with pytest.raises(FrameRangeError, match="outside the timeline"):
        frames.marks_record_range({"video": {"in": 86421, "out": 86423}}, 86400, 86500)
    record = FrameRange(86410, 86412)
    # the source range as 0-based offsets (end exclusive) or as file frame numbers (end inclusive)
    zero_based = frames.item_source_mapping(record, 1, 4, 1001, 1004)
    absolute = frames.item_source_mapping(record, 1002, 1004, 1001, 1004)
    assert zero_based is not None
    assert zero_based == absolute and zero_based.source == (1002, 1004)
    assert zero_based.source_frame(86411) == 1003 and zero_based.for_records(FrameRange(86411, 86412)) == (1003, 1004)
    assert frames.item_source_mapping(record, 0, 6, 1001, 1010) is None   # twice as many source frames: a retime
    assert frames.item_source_mapping(record, 2, 5, 1001, 1004) is None   # beyond the media


def test_resolve_render_plan() -> None:
    assert resolve_render.exr_format({"QuickTime": "mov", "EXR": "exr"}) == "exr"   # the extension value
    with pytest.raises(resolve_render.PlanError, match="no EXR"):
        resolve_render.exr_format({"QuickTime": "mov"})
    codecs = {"RGB Half (DWAA)": "RGBHalfDWAA", "RGB Half (ZIP)": "RGBHalfZIP", "RGB Float (ZIP)": "RGBFloatZIP"}
    assert resolve_render.exr_codec(codecs) == "RGBFloatZIP"
    assert resolve_render.exr_codec({"a": "RGBHalfDWAA", "b": "RGBHalfPIZ"}) == "RGBHalfPIZ"
    with pytest.raises(resolve_render.PlanError, match="lossless"):
        resolve_render.exr_codec({"a": "RGBHalfDWAB"})
    assert set(resolve_render.render_settings(FrameRange(5, 9), "/t", "n")) == {
        "SelectAllFrames", "MarkIn", "MarkOut", "TargetDir", "CustomName", "ExportVideo", "ExportAudio"}
    assert resolve_render.job_percent({"JobStatus": "渲染中", "CompletionPercentage": 40}) == 40
    assert resolve_render.job_percent({"JobStatus": "已完成", "CompletionPercentage": "100"}) == 100
    assert resolve_render.job_percent({}) == 0 and resolve_render.job_percent(None) == 0
    direct = resolve_render.direct_source(FrameRange(10, 12), "/m/plate.[1001-1004].exr", 1, 4)
    assert direct is not None and direct[0].first == 1001 and direct[1].source == (1002, 1004)
    assert resolve_render.direct_source(FrameRange(10, 12), "/m/A001.mov", 1, 4) is None
    assert resolve_render.direct_source(FrameRange(10, 12), "/m/plate.[1001-1004].dpx", 1, 4) is None
    info = resolve_render.Placement(3, 86410, 3).clip_info("clip")
    assert info == {"mediaPoolItem": "clip", "startFrame": 0, "endFrame": 3, "mediaType": 1, "trackIndex": 3,
                    "recordFrame": 86410}   # endFrame exclusive
    assert resolve_render.Placement(3, 86410, 3).clip_info("clip", end_exclusive=False)["endFrame"] == 2
    seq = sequence.FrameSequence("/o/plate.", 4, ".exr", 1002, 1004)
    assert resolve_render.import_clip_info(seq) == {"FilePath": "/o/plate.%04d.exr", "StartIndex": 1002,
                                                    "EndIndex": 1004}
    assert resolve_render.job_output_dir("/r", "Show A", "Reel 1", "plate", 86410) == "/r/Show_A/Reel_1/plate_86410"
    items = [(1, 0, 10, "a"), (2, 5, 10, "b"), (1, 30, 5, "c")]
    assert [t[3] for t in resolve_render.covering_items(items, FrameRange(8, 12))] == ["b", "a"]


# --- host interpreters ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", HOST_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_host_side_code_parses_as_python_3_6(path: Path) -> None:
    """Resolve 18 documents Python 3.6 (Nuke 13 ships 3.7): no 3.7+ syntax and no ``from __future__ import
    annotations`` (a SyntaxError before 3.7, which ``feature_version`` alone does not catch)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path), feature_version=(3, 6))
    futures = [a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "__future__"
               for a in n.names]
    assert "annotations" not in futures


def _python(version: str) -> str | None:
    """An interpreter of that version that runs: pyenv's (this machine's image carries 3.6 and 3.7), else PATH's."""
    candidates = [str(p) for p in sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"))]
    candidates += [found for found in [shutil.which("python" + version)] if found]
    for candidate in candidates:
        probe = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True, timeout=30)
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


@pytest.mark.parametrize("version,host", [("3.6", "resolve"), ("3.7", "nuke")])
def test_host_side_code_imports_in_the_hosts_oldest_python(version: str, host: str) -> None:
    """Resolve 18 (Python 3.6) and Nuke 13 (Python 3.7) load the plugin, run with ``-S`` (no site-packages)."""
    python = _python(version)
    if python is None:
        pytest.skip(f"no Python {version} interpreter on this machine (PATH or ~/.pyenv)")
    if host == "resolve":
        code = (f"import sys; sys.path[:0] = [{str(REPO / 'host_plugins' / 'resolve')!r}]; "
                "import facebridge_resolve.menu_script, facebridge_resolve.job, facebridge_resolve.dialog; ")
    else:
        code = (f"import sys; sys.path[:0] = [{str(REPO / 'host_plugins' / 'nuke')!r}, {str(REPO / 'tests' / 'fakes')!r}]; "
                f"import nuke; nuke._fake.startup([{str(REPO / 'host_plugins' / 'nuke')!r}], gui=True); "
                "import facebridge_nuke.node, facebridge_nuke.render, facebridge_nuke.panel; ")
    code += ("import host_plugins.common.command, host_plugins.common.progress, host_plugins.common.presets, "
             "host_plugins.common.resolve_render; print('loaded')")
    proc = subprocess.run([python, "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "loaded"


def test_common_imports_with_the_standard_library_only(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import importlib.util, sys
        root = {str(REPO / "host_plugins")!r}
        spec = importlib.util.spec_from_file_location("host_plugins", root + "/__init__.py",
                                                      submodule_search_locations=[root])
        module = importlib.util.module_from_spec(spec); sys.modules["host_plugins"] = module
        spec.loader.exec_module(module)
        import host_plugins.common.command, host_plugins.common.progress, host_plugins.common.presets
        import host_plugins.common.resolve_render, host_plugins.common.knobs, host_plugins.install
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("grpc", "google", "numpy", "PySide6")))
    """)
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# --- facebridge install ---------------------------------------------------------------------------


def _install(*argv: str) -> tuple[int, str]:
    from host_plugins.install import add_install_parser

    parser = argparse.ArgumentParser(prog="facebridge")
    add_install_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    out = io.StringIO()
    stdout, sys.stdout = sys.stdout, out
    try:
        code = args.func(args)
    finally:
        sys.stdout = stdout
    return code, out.getvalue()


def test_install_nuke_is_idempotent_reversible_and_works_in_nuke(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    nuke_dir = tmp_path / ".nuke"
    nuke_dir.mkdir()
    init = nuke_dir / "init.py"
    init.write_text("# the artist's own setup\nimport nuke\n")
    cli = '["/opt/fb/bin/python", "-m", "facebridge"]'
    code, out = _install("install", "nuke", "--nuke-dir", str(nuke_dir), "--cli", cli, "--dry-run")
    assert code == 0 and "would update" in out and "+_facebridge_nuke.pluginAddPath(" in out
    assert init.read_text() == "# the artist's own setup\nimport nuke\n"
    code, out = _install("install", "nuke", "--nuke-dir", str(nuke_dir), "--cli", cli)
    assert code == 0 and "updated" in out
    installed = init.read_text()
    assert installed.startswith("# the artist's own setup\nimport nuke\n")
    assert repr(str(REPO / "host_plugins" / "nuke")) in installed
    code, out = _install("install", "nuke", "--nuke-dir", str(nuke_dir), "--cli", cli)
    assert "unchanged" in out and init.read_text() == installed

    # Nuke reading ~/.nuke/init.py at start-up finds the plugin (fake nuke, GUI session).
    sys.path.insert(0, str(REPO / "tests" / "fakes"))
    try:
        import nuke

        monkeypatch.delenv("FACEBRIDGE_CLI", raising=False)
        nuke._fake.reset()
        nuke._fake.startup([str(nuke_dir)], gui=True)
        assert nuke._fake.menus["Nodes"].findItem("facebridge/FaceBridge") is not None
        assert os.environ["FACEBRIDGE_CLI"] == cli
        os.environ.pop("FACEBRIDGE_CLI")
        nuke._fake.reset()
    finally:
        sys.path.remove(str(REPO / "tests" / "fakes"))

    code, out = _install("install", "nuke", "--nuke-dir", str(nuke_dir), "--uninstall")
    assert code == 0 and "updated" in out
    assert init.read_text() == "# the artist's own setup\nimport nuke\n"
    code, out = _install("install", "nuke", "--nuke-dir", str(nuke_dir), "--uninstall")
    assert "nothing to remove" in out
    fresh = tmp_path / "fresh"
    _install("install", "nuke", "--nuke-dir", str(fresh))
    _install("install", "nuke", "--nuke-dir", str(fresh), "--uninstall")
    assert not (fresh / "init.py").exists()
    assert _install("install", "nuke", "--nuke-dir", str(fresh), "--cli", "not json")[0] == 2


def test_install_resolve_writes_the_launcher_per_os(tmp_path: Path) -> None:
    from host_plugins.install import default_resolve_scripts_dir

    scripts = tmp_path / "Scripts"
    code, out = _install("install", "resolve", "--resolve-scripts-dir", str(scripts), "--dry-run")
    assert code == 0 and "would create" in out and not scripts.exists()
    code, out = _install("install", "resolve", "--resolve-scripts-dir", str(scripts))
    launcher = scripts / "Utility" / "FaceBridge.py"
    assert code == 0 and "created" in out and launcher.is_file()
    text = launcher.read_text()
    assert "PLUGIN_DIR = %r" % str(REPO / "host_plugins" / "resolve") in text
    assert json.loads(text.split("CLI = ", 1)[1].splitlines()[0].strip()[1:-1]) == [sys.executable, "-m", "facebridge"]
    ast.parse(text, feature_version=(3, 6))
    assert "unchanged" in _install("install", "resolve", "--resolve-scripts-dir", str(scripts))[1]
    assert "removed" in _install("install", "resolve", "--resolve-scripts-dir", str(scripts), "--uninstall")[1]
    assert not launcher.exists()
    home = Path.home()
    assert default_resolve_scripts_dir("linux") == home / ".local/share/DaVinciResolve/Fusion/Scripts"
    assert default_resolve_scripts_dir("darwin") == \
        home / "Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts"
    assert str(default_resolve_scripts_dir("win32")).endswith(
        os.path.join("Blackmagic Design", "DaVinci Resolve", "Support", "Fusion", "Scripts"))
