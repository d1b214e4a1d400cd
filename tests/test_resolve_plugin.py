"""The Resolve script end to end against fake Resolve objects (tests/fakes/fake_resolve.py), with a real server.

The fake offers, per Resolve version profile (18.5 = the 18.0.4 README, 19.0, 20.3), only the calls
that version's scripting README lists (anything else is an AttributeError); its clips are real EXR
sequences and its render job really renders the timeline's frames. Renders go through the real
``facebridge process`` sidecar; results come back through ImportMedia/AppendToTimeline. Both frame
paths (a clip on an EXR sequence, an in/out range over two clips) run on every profile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import REPO, make_sequence, read_exr, same_bits

FAKES = REPO / "tests" / "fakes"
RESOLVE_DIR = REPO / "host_plugins" / "resolve"
for _path in (str(RESOLVE_DIR), str(FAKES)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import fake_resolve  # noqa: E402
from facebridge_resolve import dialog, job, menu_script  # noqa: E402
from host_plugins.common.frames import FrameRange  # noqa: E402
from host_plugins.common.resolve_render import Placement  # noqa: E402

CLI = json.dumps([sys.executable, "-m", "facebridge"])
SOURCE = "st_people_0.png"
START = 86400


@pytest.fixture(scope="module")
def plates(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Four linear EXR frames (1001-1004), R, G, B, A half."""
    return make_sequence(faces_dir / "lp_d18.mp4", tmp_path_factory.mktemp("resolve-media"), 4)


def _studio(plates: str, profile: str = "20.3"):
    resolve = fake_resolve.FakeResolve(profile=profile)
    project = resolve.GetProjectManager()._new_project("Show A")
    timeline = project._new_timeline("Reel 1", START)
    pool = project.GetMediaPool()
    media = pool.ImportMedia([{"FilePath": plates.replace("####", "%04d"), "StartIndex": 1001, "EndIndex": 1004}])[0]
    return resolve, project, timeline, media


@pytest.fixture(params=fake_resolve.PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture()
def studio(plates: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Resolve Studio 20.3 with a project whose timeline "Reel 1" starts at START (the plate not yet placed)."""
    monkeypatch.setenv("FACEBRIDGE_CLI", CLI)
    monkeypatch.setattr(dialog, "LAST_SETTINGS", str(tmp_path / "last.json"))
    return _studio(plates)


@pytest.fixture()
def versioned(plates: str, profile: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The same studio as a Resolve 18.5, 19.0 or 20.3 profile."""
    monkeypatch.setenv("FACEBRIDGE_CLI", CLI)
    monkeypatch.setattr(dialog, "LAST_SETTINGS", str(tmp_path / "last.json"))
    return _studio(plates, profile)


def _script_globals(resolve, bmd=None):
    bmd = bmd or fake_resolve.FakeBmd()
    return {"resolve": resolve, "fusion": resolve.Fusion(), "bmd": bmd}, bmd


def _append(project, media, start, end, record, track=1):
    """Test set-up: place ``media`` frames ``start..end-1`` (0-based) at ``record`` (bypasses version limits)."""
    timeline = project._timeline
    item = fake_resolve.TimelineItem(project._profile, media, track, record, start, end - start)
    assert timeline._fits(item)
    timeline._tracks[track - 1].append(item)
    return item


def _pool_folder(project, name):
    return [f for f in project.GetMediaPool().GetRootFolder().GetSubFolderList() if f.GetName() == name]


def test_clip_on_an_exr_sequence_on_every_version(versioned, profile: str, faces_dir: Path, server_address: str,
                                                  tmp_path: Path) -> None:
    """20.3 reads the EXR files and copies the grade; 19.0/18.5 lack GetSourceStartFrame and render instead;
    18.5 lacks AddTrack/trackIndex and imports only. Every version says so in the message window."""
    resolve, project, timeline, media = versioned
    source_item = _append(project, media, 1, 4, START + 10)
    source_item._grade = "look A"
    timeline._playhead = START + 11
    deliver = project._deliver_state()
    script_globals, bmd = _script_globals(resolve)

    def artist(window):
        window.Find("Sources").Text = str(faces_dir / SOURCE)
        window.Find("Server").Text = server_address
        window.Find("Output").Text = str(tmp_path / "renders")
        window.Find("Blend").Text = "0.85"
        window._click("Run")

    bmd._users.append(artist)
    outcome = menu_script.main(script_globals, env={}, log=lambda line: None)
    assert outcome.ok, outcome.message
    shown = bmd._seen[-1][1]._text()
    assert [window_id for window_id, _w in bmd._seen] == ["FaceBridgeWin", "FaceBridgeMessage"]
    assert outcome.message in shown and "the clip under the playhead" in shown and "whole" in shown
    assert json.loads((tmp_path / "last.json").read_text())["blend"] == "0.85"   # next dialog starts from here
    folder = _pool_folder(project, "facebridge")
    assert len(folder) == 1 and len(folder[0].GetClipList()) == 1, "results go to the media pool folder 'facebridge'"
    assert project.GetMediaPool().GetCurrentFolder() is project.GetMediaPool().GetRootFolder()
    assert project._deliver_state() == deliver
    out = tmp_path / "renders" / "Show_A" / "Reel_1" / ("plate_%d" % (START + 10))
    if profile == "20.3":
        assert project._job_count == 0, "an EXR clip played 1:1 needs no render job"
        for frame in range(1002, 1005):
            result, spec = read_exr(out / ("plate.%d.exr" % frame))
            plate, plate_spec = read_exr(Path(media._printf % frame))
            assert spec.channelnames == plate_spec.channelnames and result.shape == plate.shape
            assert not same_bits(result, plate).all() and spec.get_string_attribute("facebridge:ai_processed")
        assert "Copied the grade of plate.[1001-1004].exr" in shown
    else:
        assert project._job_count == 1 and "GetSourceStartFrame" in shown and "render job" in shown
        assert sorted(p.name for p in out.glob("plate.*.exr")) == ["plate.%08d.exr" % f
                                                                   for f in range(START + 10, START + 13)]
    if profile == "18.5":
        assert outcome.timeline_item is None and timeline.GetTrackCount("video") == 1
        assert "imported, not placed" in shown and "Resolve 18.5.1.6 cannot put a clip on a new track" in shown
        assert "at record frame %d" % (START + 10) in shown
        return
    assert timeline.GetTrackCount("video") == 2
    placed = timeline.GetItemListInTrack("video", 2)
    assert len(placed) == 1 and placed[0] is outcome.timeline_item
    assert (placed[0].GetStart(), placed[0].GetDuration()) == (START + 10, 3)   # the last frame too
    assert placed[0].GetMediaPoolItem() is folder[0].GetClipList()[0]
    assert placed[0]._grade == ("look A" if profile == "20.3" else None)   # a render job has the grade baked in
    assert "placed on V2 at frame %d" % (START + 10) in shown


def test_in_out_range_over_two_clips_on_every_version(versioned, profile: str, faces_dir: Path,
                                                      server_address: str, tmp_path: Path) -> None:
    """A render job (format "exr", lossless), localised status, the Deliver page left exactly as found, the
    colourist switching timeline and media pool folder while it runs."""
    from facebridge.client.params import save_preset
    from facebridge.settings import RenderParams

    resolve, project, timeline, media = versioned
    _append(project, media, 0, 2, START + 20)
    _append(project, media, 2, 4, START + 22)
    timeline._set_marks(START + 21, START + 23)
    timeline._playhead = START + 23
    other = project._new_timeline("Reel 2", START)
    pool = project.GetMediaPool()
    dailies = pool.AddSubFolder(pool.GetRootFolder(), "Dailies")
    assert pool.SetCurrentFolder(dailies)
    deliver, presets = project._deliver_state(), set(project._presets)
    preset = tmp_path / "look.json"   # saved by the panel / the CLI's preset code
    save_preset(preset, RenderParams(blend=0.8, regions={"mouth": 0.3}, keyframe_interval=2), name="look")
    env = {"FACEBRIDGE_PRESET": str(preset), "FACEBRIDGE_SOURCES": str(faces_dir / SOURCE),
           "FACEBRIDGE_SERVER": server_address, "FACEBRIDGE_OUTPUT": str(tmp_path / "renders")}
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if line.startswith("facebridge: rendering frames"):
            project._timeline = other            # the colourist moves on while the job runs
            pool._current = pool.GetRootFolder()

    outcome = menu_script.main({"resolve": resolve}, env=env, log=log)   # no UI: external scripting
    assert outcome.ok, "\n".join(lines)
    assert project._job_count == 1 and project._jobs == {}, "one render job, deleted afterwards"
    assert project._deliver_state() == deliver, "format, codec, mode, folder, name, range and audio as found"
    assert "facebridge: render job finished" in lines
    if profile == "20.3":
        assert set(project._presets) == presets, "the temporary render preset is deleted"
        record, name = FrameRange(START + 21, START + 23), "Reel_1_inout"
        assert "the in/out range, record frames %s" % record.arg() in outcome.message
    else:   # no GetMarkInOut: the clip under the playhead, whole; no DeleteRenderPreset: the preset stays, said so
        record, name = FrameRange(START + 22, START + 23), "plate"
        assert "cannot read in/out marks" in outcome.message and "the clip under the playhead" in outcome.message
        (left,) = set(project._presets) - presets
        assert "'%s'" % left in outcome.message and "DeleteRenderPreset" in outcome.message
    out = tmp_path / "renders" / "Show_A" / "Reel_1" / ("%s_%d" % (name, record.first))
    rendered = sorted(p.name for p in (out / "work" / "render" / name).iterdir())   # Resolve's subfolder
    assert rendered == ["%s_%08d.exr" % (name, f) for f in range(record.first, record.last + 1)]
    for frame in range(record.first, record.last + 1):
        result, spec = read_exr(out / ("%s.%08d.exr" % (name, frame)))
        plate, _ = read_exr(Path(media._printf % (1001 + frame - START - 20)))
        assert spec.channelnames == ("R", "G", "B")   # what the EXR render job delivers
        assert not same_bits(result, plate[..., :3]).all()
    report = json.loads((out / "work" / "report.json").read_text())
    assert report["params"]["blend"] == 0.8 and report["params"]["regions"] == {"mouth": 0.3}
    assert pool.GetCurrentFolder() is pool.GetRootFolder(), "the folder the colourist chose meanwhile"
    assert len(_pool_folder(project, "facebridge")[0].GetClipList()) == 1 and dailies.GetClipList() == []
    assert other.GetTrackCount("video") == 1 and other.GetItemListInTrack("video", 1) == []
    if profile == "18.5":
        assert timeline.GetTrackCount("video") == 1 and "imported, not placed" in outcome.message
        return
    assert project._timeline is timeline and "Switched back to timeline Reel 1" in outcome.message
    placed = timeline.GetItemListInTrack("video", 2)
    assert [(i.GetStart(), i.GetDuration()) for i in placed] == [(record.first, record.length)]


def test_a_cancelled_render_job_in_another_language_is_reported(studio, faces_dir: Path, tmp_path: Path) -> None:
    resolve, project, timeline, media = studio
    _append(project, media, 0, 2, START + 20)
    _append(project, media, 2, 4, START + 22)
    timeline._set_marks(START + 20, START + 22)
    project._cancel_after = 1
    deliver = project._deliver_state()
    env = {"FACEBRIDGE_SOURCES": str(faces_dir / SOURCE), "FACEBRIDGE_OUTPUT": str(tmp_path / "renders")}
    outcome = menu_script.main({"resolve": resolve}, env=env, log=lambda line: None)
    assert not outcome.ok and outcome.returncode == 2
    assert "the render job stopped at 33%" in outcome.message and "已取消" in outcome.message
    assert project._jobs == {} and project._deliver_state() == deliver and timeline.GetTrackCount("video") == 1


def test_render_formats_are_passed_by_extension(studio) -> None:
    _resolve, project, _timeline, _media = studio
    assert project.GetRenderCodecs("EXR") == {} and not project.SetCurrentRenderFormatAndCodec("EXR", "RGBFloatZIP")
    from host_plugins.common.resolve_render import exr_codec, exr_format
    fmt = exr_format(project.GetRenderFormats())
    assert fmt == "exr" and project.SetCurrentRenderFormatAndCodec(fmt, exr_codec(project.GetRenderCodecs(fmt)))


@pytest.mark.parametrize("inclusive", [False, True])
def test_placement_is_read_back_and_made_exact(studio, inclusive: bool) -> None:
    resolve, project, timeline, media = studio
    timeline._end_inclusive = inclusive   # whichever way a build reads endFrame, the item covers 4 frames
    assert timeline.AddTrack("video")
    item = job._place(project.GetMediaPool(), timeline, media, Placement(2, START + 5, 4))
    assert (item.GetStart(), item.GetDuration()) == (START + 5, 4)
    assert timeline.GetItemListInTrack("video", 2) == [item], "a wrong first try is removed"


def test_a_failed_placement_is_reported(studio) -> None:
    resolve, project, timeline, media = studio
    assert timeline.AddTrack("video")
    timeline._broken_placements = True
    with pytest.raises(job.JobError, match="cannot say where"):
        job._place(project.GetMediaPool(), timeline, media, Placement(2, START + 5, 4))
    assert timeline.GetItemListInTrack("video", 2) == []
    timeline._broken_placements = False
    with pytest.raises(job.JobError, match="did not place the result on V3"):   # no such track: an empty list
        job._place(project.GetMediaPool(), timeline, media, Placement(3, START + 5, 4))


def test_marks_count_from_the_timeline_start_and_the_placeholder_is_no_marks(plates: str) -> None:
    resolve, project, timeline, media = _studio(plates, "20.3")
    timeline._start = 1000                        # a long timeline: 86410 would also fit as a record frame
    _append(project, media, 0, 4, 87400)
    timeline._set_marks(87401, 87402)
    assert timeline.GetMarkInOut()["video"] == {"in": 86401, "out": 86402}
    notes: list[str] = []
    target = job.find_target(timeline, notes)
    assert target.record == (87401, 87402) and target.direct is not None and notes == []
    timeline._marks = {}
    timeline._placeholder_marks = True
    timeline._playhead = 87403
    target = job.find_target(timeline, notes)
    assert target.record == (87400, 87403) and "the clip under the playhead" in target.described
    assert "0-0" in notes[0]


@pytest.mark.parametrize("version", ["18.5", "19.0"])
def test_versions_without_mark_or_source_frame_calls_fall_back(plates: str, version: str) -> None:
    resolve, project, timeline, media = _studio(plates, version)
    _append(project, media, 0, 4, START + 5)
    timeline._set_marks(START + 6, START + 7)     # set in the UI, unreadable from a script before 20
    timeline._playhead = START + 6
    for name in ("GetMarkInOut", "GetSourceStartFrame"):
        with pytest.raises(AttributeError):
            getattr(timeline if name == "GetMarkInOut" else timeline._item_at(START + 6), name)()
    notes: list[str] = []
    target = job.find_target(timeline, notes)
    assert target.record == (START + 5, START + 8) and target.direct is None
    assert "GetMarkInOut" in notes[0] and "render job" in notes[1]
    if version == "18.5":
        with pytest.raises(AttributeError):
            timeline.AddTrack("video")
        clip_info = Placement(1, START + 20, 2).clip_info(media)
        assert project.GetMediaPool().AppendToTimeline([clip_info]) == [], "18.0.4 documents no trackIndex"


def test_resolve_is_found_the_ways_the_scripts_menu_offers(studio) -> None:
    resolve = studio[0]
    assert menu_script.find_resolve({"app": fake_resolve.FakeApp(resolve)}) is resolve
    assert menu_script.find_resolve({"bmd": fake_resolve.FakeBmd(resolve)}) is resolve
    assert menu_script.find_resolve({"app": fake_resolve.FakeApp(None), "bmd": fake_resolve.FakeBmd(resolve)}) \
        is resolve
    assert menu_script.find_resolve({}) is None   # no DaVinciResolveScript module here


def test_free_edition_without_uimanager_gets_a_message_not_a_crash() -> None:
    free = fake_resolve.FakeResolve(product="DaVinci Resolve", profile="20.3")
    assert free.Fusion().UIManager is None   # the free edition from 19.1
    bmd = fake_resolve.FakeBmd(free)
    lines: list[str] = []
    outcome = menu_script.main({"app": fake_resolve.FakeApp(free), "bmd": bmd}, env={}, log=lines.append)
    assert "needs DaVinci Resolve Studio" in outcome.message and "needs DaVinci Resolve Studio" in lines[-1]
    assert bmd._seen == []


def test_free_edition_and_missing_scripting_get_a_clear_message(studio) -> None:
    resolve, _project, _timeline, _media = studio
    free = fake_resolve.FakeResolve(product="DaVinci Resolve", profile="19.0")   # 19.0 still has a UIManager
    script_globals, bmd = _script_globals(free)
    outcome = menu_script.main(script_globals, env={}, log=lambda line: None)
    assert not outcome.ok and "needs DaVinci Resolve Studio" in outcome.message
    assert [w for w, _ in bmd._seen] == ["FaceBridgeMessage"] and "Studio" in bmd._seen[0][1]._text()
    lines: list[str] = []
    outcome = menu_script.main({}, env={}, log=lines.append)   # no resolve object, no DaVinciResolveScript module
    assert "scripting is unavailable" in outcome.message and "scripting is unavailable" in lines[-1]


def test_nothing_to_process_and_bad_settings_are_explained(studio, faces_dir: Path, tmp_path: Path) -> None:
    resolve, project, timeline, media = studio
    env = {"FACEBRIDGE_SOURCES": str(faces_dir / SOURCE), "FACEBRIDGE_PRESET": ""}
    outcome = menu_script.main({"resolve": resolve}, env=env, log=lambda line: None)
    assert "put the playhead over a video clip" in outcome.message
    outcome = menu_script.main({"resolve": resolve}, env={"FACEBRIDGE_MODE": "swap"}, log=lambda line: None)
    assert "needs at least one source image" in outcome.message
    script_globals, bmd = _script_globals(resolve)

    def artist(window):
        window.Find("Sources").Text = str(faces_dir / SOURCE)
        window.Find("Blend").Text = "lots"
        window._click("Run")
        assert window.Find("Status").Text == "setting 'blend' must be a number, got 'lots'"   # the dialog stays open
        window.Find("Preset").Text = str(tmp_path / "missing.json")
        window._click("Load")
        assert "missing.json" in window.Find("Status").Text
        window._click("Cancel")

    bmd._users.append(artist)
    outcome = menu_script.main(script_globals, env={}, log=lambda line: None)
    assert outcome.message == "cancelled" and timeline.GetTrackCount("video") == 1


def test_resolve_script_imports_with_the_standard_library_only(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(RESOLVE_DIR)!r}]
        import facebridge_resolve.menu_script, facebridge_resolve.job, facebridge_resolve.dialog
        bad = [m for m in sys.modules if m.split(".")[0] in
               ("grpc", "google", "numpy", "OpenImageIO", "PySide2", "PySide6", "inference_server",
                "facebridge_wire", "ui")]
        bad += [m for m in sys.modules if m.startswith(("facebridge.client", "facebridge.cli"))]
        print(bad)
    """)
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_installed_launcher_runs_the_script_from_the_scripts_menu(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``facebridge install resolve`` writes a launcher that Resolve runs with its globals."""
    from host_plugins.install import apply, plan_resolve

    monkeypatch.setenv("FACEBRIDGE_CLI", "placeholder")
    monkeypatch.delenv("FACEBRIDGE_CLI")   # restored to its state before the test afterwards

    for change in plan_resolve(tmp_path / "Scripts", [sys.executable, "-m", "facebridge"], uninstall=False):
        apply(change)
    launcher = tmp_path / "Scripts" / "Utility" / "FaceBridge.py"
    free = fake_resolve.FakeResolve(product="DaVinci Resolve", profile="19.0")
    bmd = fake_resolve.FakeBmd()
    code = compile(launcher.read_text(), str(launcher), "exec")
    exec(code, {"resolve": free, "fusion": free.Fusion(), "bmd": bmd, "__name__": "__main__"})
    assert [w for w, _ in bmd._seen] == ["FaceBridgeMessage"]
    assert "needs DaVinci Resolve Studio" in bmd._seen[0][1]._text()
    assert json.loads(os.environ["FACEBRIDGE_CLI"]) == [sys.executable, "-m", "facebridge"]


def _documented(readme: Path) -> set[str]:
    section = readme.read_text().split("## Host API calls", 1)[1]
    names = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`") and cells[0] != "call":
            assert cells[2].startswith(("RRM", "WIR", "FSG", "FIELD")), line
            names.add(cells[0].strip("`"))
    return names


def test_every_resolve_call_is_documented_and_the_fake_offers_nothing_else() -> None:
    import re

    documented = _documented(RESOLVE_DIR / "README.md")
    methods = {name.split(".", 1)[1] for name in documented}
    sources = [RESOLVE_DIR / "FaceBridge.py", *sorted((RESOLVE_DIR / "facebridge_resolve").glob("*.py"))]
    calls = {m for path in sources for m in re.findall(r"\.([A-Z]\w*)\(", path.read_text())}
    attributes = {m for path in sources for m in re.findall(r"\.(UIManager|Text|CurrentText|CurrentIndex)\b",
                                                             path.read_text())}
    assert calls and calls | attributes | {"scriptapp"} <= methods, sorted((calls | attributes) - methods)
    # the fake's per-version table (API) and its classes agree, and every version's methods are documented
    classes = {"Resolve": fake_resolve.FakeResolve, "ProjectManager": fake_resolve.ProjectManager,
               "Project": fake_resolve.Project, "MediaPool": fake_resolve.MediaPool, "Folder": fake_resolve.Folder,
               "MediaPoolItem": fake_resolve.MediaPoolItem, "Timeline": fake_resolve.Timeline,
               "TimelineItem": fake_resolve.TimelineItem}
    for api, cls in classes.items():
        public = {m for m, a in vars(cls).items() if not m.startswith("_") and callable(a)}
        assert public == set(fake_resolve.API[api]), api
        assert {"%s.%s" % (api, m) for m in public} <= documented, api
    names = {"FakeResolve": ["Resolve"], "ProjectManager": ["ProjectManager"], "Project": ["Project"],
             "MediaPool": ["MediaPool"], "MediaPoolItem": ["MediaPoolItem"], "Timeline": ["Timeline"],
             "Folder": ["Folder"], "FakeApp": ["app"],
             "TimelineItem": ["TimelineItem"], "FakeFusion": ["Fusion"], "FakeUIManager": ["UIManager"],
             "FakeWindow": ["Window"], "FakeDispatcher": ["UIDispatcher"], "FakeBmd": ["bmd"],
             "_Element": ["ComboBox", "Element"]}
    for cls_name, prefixes in names.items():
        cls = getattr(fake_resolve, cls_name)
        for method, attr in vars(cls).items():
            if method.startswith("_") or not callable(attr):
                continue
            assert any("%s.%s" % (p, method) in documented for p in prefixes), (cls_name, method)
    assert "Fusion.UIManager" in documented and "Window.On" in documented


# --- Send to farm (issue 14 item 6) ------------------------------------------------------------------


@pytest.mark.parametrize("version", ["20.3", "19.0"])
def test_send_to_farm_writes_the_job_instead_of_processing(plates: str, version: str, faces_dir: Path,
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dialog's "Run on" choice: the clip's frames found (20.3 reads the EXR files) or rendered (19.0: a render
    job) as for a local run, then ``facebridge farm openjd`` writes a valid bundle of the same settings; nothing is
    processed or placed, and the message says where the bundle went and what to import when the farm is done."""
    monkeypatch.setenv("FACEBRIDGE_CLI", CLI)
    monkeypatch.setattr(dialog, "LAST_SETTINGS", str(tmp_path / "last.json"))
    resolve, project, timeline, media = _studio(plates, version)
    _append(project, media, 1, 4, START + 10)
    timeline._playhead = START + 11
    script_globals, bmd = _script_globals(resolve)

    def artist(window):
        assert window.Find("Farm").CurrentText.startswith("this machine")   # processing here is the default
        window.Find("Sources").Text = str(faces_dir / SOURCE)
        window.Find("Output").Text = str(tmp_path / "renders")
        window.Find("Blend").Text = "0.85"
        window.Find("Farm").CurrentIndex = 1   # send to farm: Open Job Description bundle
        window.Find("FarmChunk").Text = "0"
        window._click("Run")
        assert "positive whole number" in window.Find("Status").Text   # the dialog stays open
        window.Find("FarmChunk").Text = "2"
        window._click("Run")

    bmd._users.append(artist)
    outcome = menu_script.main(script_globals, env={}, log=lambda line: None)
    assert outcome.ok and outcome.timeline_item is None, outcome.message
    assert json.loads((tmp_path / "last.json").read_text())["farm"] == "openjd"   # the next dialog starts from here
    out = tmp_path / "renders" / "Show_A" / "Reel_1" / ("plate_%d" % (START + 10))
    bundle = out / "farm"
    shown = bmd._seen[-1][1]._text()
    assert "Sent the clip under the playhead" in shown and "to the farm (openjd, chunks of 2 frames)" in shown
    assert "wrote %s: analyse, then 2 render task(s)" % bundle in shown and "deadline bundle submit" in shown
    assert "Nothing is placed yet: when the farm has finished, import" in shown
    assert "at record frame %d" % (START + 10) in shown
    assert timeline.GetTrackCount("video") == 1 and _pool_folder(project, "facebridge") == []
    assert not list(out.glob("plate.*.exr")), "nothing processed here"
    openjd = str(Path(sys.executable).parent / "openjd")
    check = subprocess.run([openjd, "check", str(bundle / "template.yaml")], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
    assert check.returncode == 0, check.stdout
    values = json.loads((bundle / "job_params.json").read_text())
    assert values["ChunkSize"] == 2 and values["Source1"] == str(faces_dir / SOURCE)
    if version == "20.3":   # the source EXR files, read directly by the farm
        assert project._job_count == 0 and values["InputPattern"] == plates and values["Frames"] == "1002-1004"
        assert values["OutputPattern"] == str(out / "plate.####.exr") and "copy the grade of" in shown
    else:                   # the render job's frames, kept for the farm
        assert project._job_count == 1 and values["InputPattern"].startswith(str(out / "work" / "render"))
        assert values["Frames"] == "%d-%d" % (START + 10, START + 12)
        assert values["OutputPattern"] == str(out / "plate.########.exr")
        first = Path(values["InputPattern"].replace("########", "%08d" % (START + 10)))
        assert first.is_file()
    template = (bundle / "template.yaml").read_text()
    assert "0.85" in template and "--blend" in template


def test_farm_settings_from_the_environment(studio, faces_dir: Path, tmp_path: Path) -> None:
    """Without a dialog: ``FACEBRIDGE_FARM`` and ``FACEBRIDGE_FARM_CHUNK``; a bad value is explained."""
    settings = dialog.settings_from_env({"FACEBRIDGE_FARM": "opencue", "FACEBRIDGE_FARM_CHUNK": "5",
                                         "FACEBRIDGE_SOURCES": "a.png"})
    chosen = dialog.job_from_settings(settings)
    assert (chosen.farm, chosen.farm_chunk, chosen.sources) == ("opencue", 5, ["a.png"])
    assert dialog.job_from_settings({"sources": "a.png"})[4:] == ("", 10)   # process here, chunks of 10
    resolve, project, timeline, media = studio
    outcome = menu_script.main({"resolve": resolve}, env={"FACEBRIDGE_FARM": "deadline", "FACEBRIDGE_SOURCES": "a"},
                               log=lambda line: None)
    assert not outcome.ok and "the farm must be openjd or opencue or empty" in outcome.message
