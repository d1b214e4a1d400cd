"""The Resolve script end to end against fake Resolve objects (tests/fakes/fake_resolve.py), with a real server.

The fake implements only the calls listed in host_plugins/resolve/README.md; its clips are real EXR
sequences and its render job really renders the timeline's frames. Renders go through the real
``facebridge process`` sidecar; results come back through ImportMedia/AppendToTimeline.
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
from facebridge_resolve import dialog, menu_script  # noqa: E402

CLI = json.dumps([sys.executable, "-m", "facebridge"])
SOURCE = "st_people_0.png"
START = 86400


@pytest.fixture(scope="module")
def plates(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Four linear EXR frames (1001-1004), R, G, B, A half."""
    return make_sequence(faces_dir / "lp_d18.mp4", tmp_path_factory.mktemp("resolve-media"), 4)


@pytest.fixture()
def studio(plates: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Resolve Studio with a project whose timeline holds the plate on V1 at record frame START+10."""
    monkeypatch.setenv("FACEBRIDGE_CLI", CLI)
    monkeypatch.setattr(dialog, "LAST_SETTINGS", str(tmp_path / "last.json"))
    resolve = fake_resolve.FakeResolve()
    project = resolve.GetProjectManager()._new_project("Show A")
    timeline = project._timeline = fake_resolve.Timeline("Reel 1", START)
    media = project.GetMediaPool().ImportMedia([{"FilePath": plates.replace("####", "%04d"), "StartIndex": 1001,
                                                 "EndIndex": 1004}])[0]
    return resolve, project, timeline, media


def _script_globals(resolve, bmd=None):
    bmd = bmd or fake_resolve.FakeBmd()
    return {"resolve": resolve, "fusion": resolve.Fusion(), "bmd": bmd}, bmd


def test_clip_on_an_exr_sequence_is_read_directly_and_placed_above(studio, faces_dir: Path, server_address: str,
                                                                   tmp_path: Path) -> None:
    resolve, project, timeline, media = studio
    project.GetMediaPool().AppendToTimeline([{"mediaPoolItem": media, "startFrame": 1, "endFrame": 3, "mediaType": 1,
                                              "trackIndex": 1, "recordFrame": START + 10}])
    timeline._playhead = START + 11
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
    assert project._job_count == 0, "an EXR clip played 1:1 needs no render job"
    assert timeline.GetTrackCount("video") == 2
    placed = timeline.GetItemListInTrack("video", 2)
    assert len(placed) == 1 and placed[0] is outcome.timeline_item
    assert (placed[0].GetStart(), placed[0].GetDuration()) == (START + 10, 3)
    out = tmp_path / "renders" / "Show_A" / "Reel_1" / ("plate_%d" % (START + 10))
    assert placed[0].GetMediaPoolItem().GetClipProperty("File Path") == str(out / "plate.[1002-1004].exr")
    for frame in range(1002, 1005):
        result, spec = read_exr(out / ("plate.%d.exr" % frame))
        plate, plate_spec = read_exr(Path(media._printf % frame))
        assert spec.channelnames == plate_spec.channelnames and result.shape == plate.shape
        assert not same_bits(result, plate).all() and spec.get_string_attribute("facebridge:ai_processed")
    assert json.loads((tmp_path / "last.json").read_text())["blend"] == "0.85"   # next dialog starts from here
    assert [window_id for window_id, _w in bmd._seen] == ["FaceBridgeWin", "FaceBridgeMessage"]
    assert "placed on V2 at frame %d" % (START + 10) in bmd._seen[-1][1]._text()


def test_in_out_range_over_two_clips_is_rendered_by_a_render_job(studio, faces_dir: Path, server_address: str,
                                                                 tmp_path: Path) -> None:
    from facebridge.client.params import save_preset
    from facebridge.settings import RenderParams

    resolve, project, timeline, media = studio
    pool = project.GetMediaPool()
    pool.AppendToTimeline([{"mediaPoolItem": media, "startFrame": 0, "endFrame": 1, "mediaType": 1, "trackIndex": 1,
                            "recordFrame": START + 20},
                           {"mediaPoolItem": media, "startFrame": 2, "endFrame": 3, "mediaType": 1, "trackIndex": 1,
                            "recordFrame": START + 22}])
    timeline._set_marks(START + 21, START + 23)
    preset = tmp_path / "look.json"   # saved by the panel / the CLI's preset code
    save_preset(preset, RenderParams(blend=0.8, regions={"mouth": 0.3}, keyframe_interval=2), name="look")
    env = {"FACEBRIDGE_PRESET": str(preset), "FACEBRIDGE_SOURCES": str(faces_dir / SOURCE),
           "FACEBRIDGE_SERVER": server_address, "FACEBRIDGE_OUTPUT": str(tmp_path / "renders")}
    lines: list[str] = []
    outcome = menu_script.main({"resolve": resolve}, env=env, log=lines.append)   # no UI: external scripting
    assert outcome.ok, "\n".join(lines)
    assert project._job_count == 1 and project._jobs == {}, "one render job, deleted afterwards"
    assert project.GetCurrentRenderFormatAndCodec() == {"format": "mov", "codec": "H264"}   # Deliver page restored
    assert project.GetCurrentRenderMode() == 0
    assert "facebridge: render job complete" in lines
    placed = timeline.GetItemListInTrack("video", 2)
    assert [(i.GetStart(), i.GetDuration()) for i in placed] == [(START + 21, 3)]
    out = tmp_path / "renders" / "Show_A" / "Reel_1" / ("Reel_1_inout_%d" % (START + 21))
    rendered = sorted(p.name for p in (out / "work" / "render").iterdir())
    assert rendered == ["Reel_1_inout_%08d.exr" % f for f in range(START + 21, START + 24)]
    results = sorted(p.name for p in out.glob("Reel_1_inout.*.exr"))
    assert results == ["Reel_1_inout.%08d.exr" % f for f in range(START + 21, START + 24)]
    for record, frame in zip(range(START + 21, START + 24), (1002, 1003, 1004)):
        result, spec = read_exr(out / ("Reel_1_inout.%08d.exr" % record))
        plate, _ = read_exr(Path(media._printf % frame))
        assert spec.channelnames == ("R", "G", "B")   # what the EXR render job delivers
        assert not same_bits(result, plate[..., :3]).all()
    report = json.loads((out / "work" / "report.json").read_text())
    assert report["params"]["blend"] == 0.8 and report["params"]["regions"] == {"mouth": 0.3}


def test_free_edition_and_missing_scripting_get_a_clear_message(studio) -> None:
    resolve, _project, _timeline, _media = studio
    free = fake_resolve.FakeResolve(product="DaVinci Resolve")
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
    free = fake_resolve.FakeResolve(product="DaVinci Resolve")
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
            assert cells[2].startswith(("RRM", "WIR")), line
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
    names = {"FakeResolve": ["Resolve"], "ProjectManager": ["ProjectManager"], "Project": ["Project"],
             "MediaPool": ["MediaPool"], "MediaPoolItem": ["MediaPoolItem"], "Timeline": ["Timeline"],
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
