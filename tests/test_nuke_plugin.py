"""The Nuke plugin end to end against the fake ``nuke`` module (tests/fakes/nuke.py), with a real server.

The fake implements only the documented calls listed in host_plugins/nuke/README.md, as strictly as the
documentation allows (TCL-evaluated file knobs, a Read that caches until reloaded, toNode from the group
context, unique names, the node graph owned by the main thread); its Read/Write nodes move real EXR pixels.
Renders go through the real ``facebridge process`` sidecar, or a small fake CLI where a test needs
control over the results. GUI renders and ``nuke -t`` renders run under the Nuke 13 and Nuke 16 profiles.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
from support import REPO, make_sequence, read_exr, same_bits

FAKES = REPO / "tests" / "fakes"
NUKE_DIR = REPO / "host_plugins" / "nuke"
for _path in (str(NUKE_DIR), str(FAKES)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import nuke  # noqa: E402  (the fake)

CLI = json.dumps([sys.executable, "-m", "facebridge"])
SOURCE = "st_people_0.png"


PROFILES = (13, 16)   # Nuke 13 (Python 3.7, PySide2) and Nuke 16 (Python 3.11, PySide6)


@pytest.fixture(params=PROFILES, ids=lambda v: "nuke%d" % v)
def fake_nuke(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FACEBRIDGE_CLI", CLI)
    nuke._fake.reset(version=request.param)
    nuke._fake.startup([str(NUKE_DIR)], gui=True)
    yield nuke
    nuke._fake.reset(version=16)


def _press(fake, node, button: str, timeout: float = 120.0) -> None:
    """The artist presses a button; Nuke's event loop runs until the node's job is over."""
    from facebridge_nuke import render

    node[button].execute()
    fake._fake.run_main_loop(lambda: not render.is_running(node), timeout)


def _plate_read(fake, plates: str, first: int = 1001, last: int = 1003):
    """A Read of the plate, as the file browser makes it (frame range and format from the files)."""
    read = fake.nodes.Read()
    read["file"].fromUserText("%s %d-%d" % (plates, first, last))
    return read


@pytest.fixture(scope="module")
def plates(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Three linear EXR frames (1001-1003) of a talking head, R, G, B, A half."""
    return make_sequence(faces_dir / "lp_d18.mp4", tmp_path_factory.mktemp("nuke-plates"), 3)


def _script(fake, plates: str, out: Path, source: Path, server: str = ""):
    """A Read of the plate feeding a new FaceBridge node (created through the menu, as an artist does)."""
    read = _plate_read(fake, plates)
    fake._fake.menus["Nodes"].findItem("facebridge/FaceBridge").invoke()
    node = fake.toNode("FaceBridge1")
    node.setInput(0, read)
    node["sources"].setValue(str(source))
    node["server"].setValue(server)
    node["first_frame"].setValue(1001)
    node["last_frame"].setValue(1003)
    node["output_dir"].setValue(str(out))
    node["blend"].setValue(0.9)
    node["region_mouth"].setValue(0.5)
    node["keyframe_interval"].setValue(2)
    return read, node


def _node_output(fake, node, frame: int, path: Path) -> tuple[np.ndarray, oiio.ImageSpec]:
    """What the node outputs at ``frame``, through a Write (as a downstream render would see it)."""
    write = fake.nodes.Write(file=str(path), file_type="exr", channels="all", datatype="32 bit float")
    write.setInput(0, node)
    fake.execute(write, frame, frame)
    fake.delete(write)
    return read_exr(path)


def test_init_builds_no_ui_and_menu_adds_the_node(monkeypatch: pytest.MonkeyPatch) -> None:
    nuke._fake.reset()
    nuke._fake.startup([str(NUKE_DIR)], gui=False)  # the fake's nuke.menu raises without a GUI
    assert nuke._fake.menus == {}
    nuke._fake.reset()
    nuke._fake.startup([str(NUKE_DIR)], gui=True)
    item = nuke._fake.menus["Nodes"].findItem("facebridge/FaceBridge")
    item.invoke()
    node = nuke.toNode("FaceBridge1")
    from host_plugins.common.knobs import PARAM_KNOBS

    expected = {k.name for k in PARAM_KNOBS} | {"server", "sources", "first_frame", "last_frame", "output_dir",
                                                "analyse", "render", "open_panel", "get_from_panel", "status",
                                                "send_to_farm", "farm_scheduler", "farm_chunk", "farm_bundle"}
    assert expected <= set(node.knobs())
    assert [n.Class() for n in node.nodes()] == ["Input", "Read", "Switch", "Output"]
    assert node["render"].Class() == "PyScript_Knob" and node["mode"].value() == "swap"
    item.invoke()
    assert nuke.toNode("FaceBridge2") is not None
    nuke._fake.reset()


def test_node_passes_its_input_through_until_results_exist(fake_nuke, plates: str, faces_dir: Path,
                                                           tmp_path: Path) -> None:
    _read, node = _script(fake_nuke, plates, tmp_path / "out", faces_dir / SOURCE)
    pixels, spec = _node_output(fake_nuke, node, 1002, tmp_path / "through.exr")
    plate, plate_spec = read_exr(Path(plates.replace("####", "1002")))
    assert spec.channelnames == plate_spec.channelnames
    assert same_bits(pixels, plate).all()


def test_gui_render_and_farm_render_give_bit_identical_frames(fake_nuke, plates: str, faces_dir: Path,
                                                              server_address: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _read, node = _script(fake_nuke, plates, out, faces_dir / SOURCE, server_address)
    script = tmp_path / "shot.nk"

    # The artist presses Render in the GUI.
    _press(fake_nuke, node, "render")
    assert node["status"].value().startswith("3 frames: 3 ok"), node["status"].value()
    results = sorted(p.name for p in out.glob("FaceBridge1.*.exr"))
    assert results == ["FaceBridge1.1001.exr", "FaceBridge1.1002.exr", "FaceBridge1.1003.exr"]
    progress = [p for name, p, _m in fake_nuke._fake.progress if name == "FaceBridge render" and p is not None]
    assert progress[-1] == 100 and progress == sorted(progress)
    assert not list((out / "work" / "1001-1003").glob("plate.*.exr")), "plates are removed after a good render"

    # The internal Read now shows the results: the node's output is the result file.
    internal = node.node("Results")
    assert internal["file"].evaluate() == str(out / "FaceBridge1.####.exr") and internal["raw"].value()
    assert node.node("ShowResults")["which"].value() == 1
    shown, _ = _node_output(fake_nuke, node, 1002, tmp_path / "shown.exr")
    result, result_spec = read_exr(out / "FaceBridge1.1002.exr")
    plate, _ = read_exr(Path(plates.replace("####", "1002")))
    assert same_bits(shown, result).all()
    assert not same_bits(result, plate).all(), "the face was processed"
    params_hash = result_spec.get_string_attribute("facebridge:params_hash")
    assert params_hash and result_spec.get_string_attribute("facebridge:ai_processed")

    gui = {f: read_exr(out / ("FaceBridge1.%d.exr" % f)) for f in (1001, 1002, 1003)}
    fake_nuke.scriptSaveAs(str(script))
    for path in out.glob("FaceBridge1.*.exr"):
        path.unlink()

    # The farm (another user, another process) renders the saved script in nuke -t, in two chunks.
    env = {**os.environ, "NUKE_PATH": str(NUKE_DIR), "FACEBRIDGE_CLI": CLI, "HOME": str(tmp_path / "farm-home"),
           "FAKE_NUKE_VERSION_MAJOR": str(fake_nuke.NUKE_VERSION_MAJOR)}
    for frames, count in (("1001-1001", 1), ("1002-1003", 2)):
        farm = subprocess.run([sys.executable, str(FAKES / "nuke_t.py"), str(NUKE_DIR / "facebridge_render.py"),
                               "--frames", frames, str(script), "FaceBridge1"],
                              capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL)
        assert farm.returncode == 0, farm.stdout + farm.stderr
        assert "facebridge: FaceBridge1: %d frames: %d ok" % (count, count) in farm.stdout, farm.stdout
    for frame, (gui_pixels, gui_spec) in gui.items():
        farm_pixels, farm_spec = read_exr(out / ("FaceBridge1.%d.exr" % frame))
        assert farm_spec.channelnames == gui_spec.channelnames and str(farm_spec.format) == str(gui_spec.format)
        assert [str(f) for f in farm_spec.channelformats] == [str(f) for f in gui_spec.channelformats]
        assert farm_pixels.dtype == gui_pixels.dtype and farm_pixels.tobytes() == gui_pixels.tobytes(), frame
        assert farm_spec.get_string_attribute("facebridge:params_hash") == params_hash


def test_render_passes_every_knob_to_the_sidecar(fake_nuke, plates: str, faces_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The sidecar command carries the knobs (and --server only when the server knob is set)."""
    log = tmp_path / "argv.json"
    fake_cli = tmp_path / "fake_cli.py"
    fake_cli.write_text(textwrap.dedent(f"""
        import json, sys
        open({str(log)!r}, "a").write(json.dumps(sys.argv[1:]) + "\\n")
        print(json.dumps({{"event": "start", "total": 3, "server": "x"}}), flush=True)
        print(json.dumps({{"event": "end", "total": 3, "ok": 3, "warnings": 0, "failed": 0, "elapsed_s": 0.1}}))
    """))
    monkeypatch.setenv("FACEBRIDGE_CLI", json.dumps([sys.executable, str(fake_cli)]))
    _read, node = _script(fake_nuke, plates, tmp_path / "out", faces_dir / SOURCE)
    node["colour_match"].setValue("histogram")
    node["swapper"].setValue("inswapper_128")
    from facebridge_nuke import render

    outcome = render.render_node("FaceBridge1", 1002, 1003)
    argv = json.loads(log.read_text().splitlines()[-1])
    assert outcome.returncode == 0, outcome.message
    assert "--server" not in argv
    pairs = dict(zip(argv, argv[1:]))
    assert argv[0] == "process" and pairs["--frames"] == "1002-1003" and pairs["--analyse-range"] == "1001-1003"
    assert pairs["--blend"] == "0.9" and pairs["--regions"] == "mouth=0.5" and pairs["--keyframe-interval"] == "2"
    assert pairs["--colour-match"] == "histogram" and pairs["--swapper"] == "inswapper_128"
    assert pairs["--colorspace"] == "lin_rec709"   # Nuke's default working space, passed explicitly
    assert pairs["--source"] == str(faces_dir / SOURCE)
    assert pairs["--input"].endswith(os.path.join("work", "1002-1003", "plate.####.exr"))   # per chunk
    written = [Path(p).name for p in fake_nuke._fake.written]
    assert written == ["plate.1001.exr", "plate.1002.exr", "plate.1003.exr"]  # the whole shot, for the analysis

    _press(fake_nuke, node, "analyse")   # Analyse: the same shot id, so a render replays the analysis
    analyse = json.loads(log.read_text().splitlines()[-1])
    apairs = dict(zip(analyse, analyse[1:]))
    assert analyse[0] == "analyse" and apairs["--frames"] == "1001-1003" and apairs["--keyframe-interval"] == "2"
    assert apairs["--input"].endswith(os.path.join("work", "analyse", "plate.####.exr"))
    assert apairs["--shot"] == pairs["--shot"]
    assert node["status"].value().startswith("analysed 1001-1003")


def test_cancel_kills_the_sidecar(fake_nuke, plates: str, faces_dir: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pid_file = tmp_path / "pid"
    slow_cli = tmp_path / "slow_cli.py"
    slow_cli.write_text(textwrap.dedent(f"""
        import json, os, sys, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        print(json.dumps({{"event": "start", "total": 3, "server": "x"}}), flush=True)
        print(json.dumps({{"event": "frame", "frame": 1001, "status": "ok", "done": 1, "total": 3}}), flush=True)
        time.sleep(60)
    """))
    monkeypatch.setenv("FACEBRIDGE_CLI", json.dumps([sys.executable, str(slow_cli)]))
    _read, node = _script(fake_nuke, plates, tmp_path / "out", faces_dir / SOURCE)
    # The artist hits Cancel once the sidecar runs (the dialog stays live while it is quiet).
    fake_nuke._fake.cancel = lambda name, updates: updates >= 2 and pid_file.exists()
    started = time.monotonic()
    _press(fake_nuke, node, "render")
    assert time.monotonic() - started < 30
    assert node["status"].value() == "cancelled"
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid), "the sidecar was killed"
    assert node.node("ShowResults")["which"].value() == 0
    assert fake_nuke._fake.messages == []   # a cancel is not an error


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of this process counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def test_render_refuses_with_a_clear_message(fake_nuke, plates: str, faces_dir: Path, tmp_path: Path) -> None:
    from facebridge_nuke import render

    read, node = _script(fake_nuke, plates, tmp_path / "out", faces_dir / SOURCE)
    node["sources"].setValue("")
    assert "needs at least one source image" in render.render_node("FaceBridge1").message
    _press(fake_nuke, node, "render")
    assert "needs at least one source image" in fake_nuke._fake.messages[-1]
    node["sources"].setValue(str(faces_dir / SOURCE))
    node["output_dir"].setValue("")
    assert "save the script first" in render.render_node("FaceBridge1").message
    node["output_dir"].setValue(str(tmp_path / "out"))
    assert "outside the node's frame range" in render.render_node("FaceBridge1", 990, 1001).message
    fake_nuke.root()["proxy"].setValue(True)
    assert "proxy mode is on" in render.render_node("FaceBridge1").message
    fake_nuke.root()["proxy"].setValue(False)
    node.setInput(0, None)
    assert "has no input" in render.render_node("FaceBridge1").message
    assert "is not a FaceBridge node" in render.render_node(read.name()).message
    node["blend"].setValue(1.5)
    node.setInput(0, read)
    assert "'blend' must be within 0..1" in render.render_node("FaceBridge1").message
    node["blend"].setValue(1.0)
    node["stabilise"].setValue(6)   # inside no slider range; the knob layer refuses it before any sidecar runs
    assert render.render_node("FaceBridge1").message.endswith("setting 'stabilise' must be within 0..4, got 6")
    assert "setting 'stabilise' must be within 0..4, got 6" in node["status"].value()


def test_saved_script_defaults_the_output_folder_next_to_it(fake_nuke, plates: str, faces_dir: Path,
                                                            tmp_path: Path) -> None:
    from facebridge_nuke.node import read_settings

    _read, node = _script(fake_nuke, plates, tmp_path / "unused", faces_dir / SOURCE)
    node["output_dir"].setValue("")
    (tmp_path / "shots").mkdir()
    fake_nuke.scriptSaveAs(str(tmp_path / "shots" / "sh010_comp_v003.nk"))
    settings = read_settings(node)
    assert settings.folders.output_dir == str(tmp_path / "shots" / "facebridge" / "sh010_comp_v003" / "FaceBridge1")
    assert settings.folders.result_pattern.endswith("FaceBridge1.####.exr")


def test_plugin_imports_with_the_standard_library_only(tmp_path: Path) -> None:
    """Nuke's interpreter may carry an old protobuf: the host side loads no grpc, protobuf, numpy or Qt."""
    code = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(FAKES)!r}]
        import nuke
        nuke._fake.startup([{str(NUKE_DIR)!r}], gui=True)
        import facebridge_nuke.node, facebridge_nuke.render, facebridge_nuke.panel
        import host_plugins.common.command, host_plugins.common.progress, host_plugins.common.presets
        bad = [m for m in sys.modules if m.split(".")[0] in
               ("grpc", "google", "numpy", "OpenImageIO", "PySide2", "PySide6", "shiboken6", "facebridge_wire",
                "inference_server", "ui")]
        bad += [m for m in sys.modules if m.startswith(("facebridge.client", "facebridge.cli"))]
        print(bad)
    """)
    # -S: no site-packages at all, so any non-stdlib import would fail outright.
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def _documented(readme: Path) -> set[str]:
    """Backticked names in the first column of the README's "Host API calls" table, each with a URL."""
    section = readme.read_text().split("## Host API calls", 1)[1]
    names = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`") and cells[0] != "call":
            assert cells[2].startswith("https://learn.foundry.com/"), line
            names.add(cells[0].strip("`"))
    return names


def test_every_nuke_call_is_documented_and_the_fake_offers_nothing_else() -> None:
    documented = _documented(NUKE_DIR / "README.md")
    sources = [NUKE_DIR / "init.py", NUKE_DIR / "menu.py", NUKE_DIR / "facebridge_render.py",
               *sorted((NUKE_DIR / "facebridge_nuke").glob("*.py"))]
    used = {"nuke." + m for path in sources for m in re.findall(r"(?<![\w.])nuke\.([A-Za-z_]\w*)", path.read_text())}
    assert used and used <= documented, sorted(used - documented)
    # The fake's public API: module functions/values and the methods of its classes.
    classes = {"Knob", "Node", "Group", "Menu", "MenuItem", "ProgressTask", "Undo"}
    for name, value in vars(nuke).items():
        if name.startswith("_") or isinstance(value, type(os)) or name in ("OrderedDict", "annotations"):
            continue
        if isinstance(value, type):
            assert name in classes or "nuke." + name in documented, name
            for method, attr in vars(value).items():
                if method.startswith("_") and method != "__getitem__" or not callable(attr):
                    continue
                owners = [base.__name__ for base in value.__mro__ if method in vars(base)]
                assert any("%s.%s" % (owner, method) in documented for owner in owners + [name]), (name, method)
        else:
            assert "nuke." + name in documented, name


# --- the defects of the issue, each against the stricter fake ----------------------------------------

FAKE_RENDER_CLI = '''
import json, os, sys
import numpy as np
import OpenImageIO as oiio
argv = sys.argv[1:]
open(os.environ["FB_ARGV_LOG"], "a").write(json.dumps(argv) + "\\n")
pairs = dict(zip(argv, argv[1:]))
first, last = (int(x) for x in pairs["--frames"].split("-"))
fail = [int(f) for f in os.environ.get("FB_FAIL", "").split(",") if f]
value = float(pairs.get("--blend", "1"))
print(json.dumps({"event": "start", "total": last - first + 1, "server": "x"}), flush=True)
for frame in range(first, last + 1):
    if frame not in fail:
        plate = oiio.ImageBuf(pairs["--input"].replace("####", "%04d" % frame))
        spec = plate.spec()
        out = oiio.ImageOutput.create("x.exr")
        path = pairs["--output"].replace("####", "%04d" % frame)
        out.open(path, spec)
        out.write_image(np.full((spec.height, spec.width, spec.nchannels), value, np.float32))
        out.close()
    status = "failed" if frame in fail else "ok"
    print(json.dumps({"event": "frame", "frame": frame, "status": status, "done": frame - first + 1,
                      "total": last - first + 1}), flush=True)
print(json.dumps({"event": "end", "total": last - first + 1, "ok": last - first + 1 - len(fail), "warnings": 0,
                  "failed": len(fail), "elapsed_s": 0.1}), flush=True)
sys.exit(1 if fail else 0)
'''


@pytest.fixture()
def fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in ``facebridge`` whose results are the blend value everywhere (and FB_FAIL frames missing)."""
    script = tmp_path / "fake_render_cli.py"
    script.write_text(FAKE_RENDER_CLI)
    log = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FACEBRIDGE_CLI", json.dumps([sys.executable, str(script)]))
    monkeypatch.setenv("FB_ARGV_LOG", str(log))
    return log


def _argv(log: Path, command: str) -> list[str]:
    return [a for a in (json.loads(line) for line in log.read_text().splitlines()) if a and a[0] == command][-1]


def test_results_are_reloaded_with_their_format_after_every_render(fake_nuke, fake_cli: Path, plates: str,
                                                                   faces_dir: Path, tmp_path: Path) -> None:
    """Item 11: the internal Read is reloaded (no stale cached frames) and takes its format from the files."""
    _read, node = _script(fake_nuke, plates, tmp_path / "out", faces_dir / SOURCE)
    _press(fake_nuke, node, "render")
    first, spec = _node_output(fake_nuke, node, 1002, tmp_path / "first.exr")
    assert np.all(first == np.float32(0.9))
    _plate, plate_spec = read_exr(Path(plates.replace("####", "1002")))
    assert (spec.full_width, spec.full_height) == (plate_spec.full_width, plate_spec.full_height) != (1920, 1080)
    node["blend"].setValue(0.5)
    _press(fake_nuke, node, "render")   # the same result path, new pixels
    second, _ = _node_output(fake_nuke, node, 1002, tmp_path / "second.exr")
    assert np.all(second == np.float32(0.5)), "the Read still shows the frames cached by the first render"


def test_failed_frames_show_as_a_checkerboard_and_the_status_names_them(fake_nuke, fake_cli: Path, plates: str,
                                                                         faces_dir: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 11: a failed frame is one clear error on the node, not a Read error on the frames downstream."""
    monkeypatch.setenv("FB_FAIL", "1002")
    _read, node = _script(fake_nuke, plates, tmp_path / "out", faces_dir / SOURCE)
    _press(fake_nuke, node, "render")
    status = node["status"].value()
    assert "1 failed" in status and "frames without a result (shown as a checkerboard): 1002" in status, status
    assert "1 failed" in fake_nuke._fake.messages[-1]
    for frame in (1001, 1002, 1003):   # a downstream render runs through every frame
        pixels, _ = _node_output(fake_nuke, node, frame, tmp_path / ("f%d.exr" % frame))
        assert np.all(pixels == np.float32(0.9)) != (frame == 1002)


def test_render_runs_in_a_thread_and_a_second_press_starts_nothing(fake_nuke, plates: str, faces_dir: Path,
                                                                    tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 12: the button returns at once (the GUI stays live), one job per node, Cancel stops it."""
    from facebridge_nuke import render

    started = tmp_path / "started"
    slow_cli = tmp_path / "slow_cli.py"
    slow_cli.write_text(textwrap.dedent(f"""
        import json, sys, time
        open({str(started)!r}, "a").write("x")
        print(json.dumps({{"event": "start", "total": 3, "server": "x"}}), flush=True)
        time.sleep(60)
    """))
    monkeypatch.setenv("FACEBRIDGE_CLI", json.dumps([sys.executable, str(slow_cli)]))
    _read, node = _script(fake_nuke, plates, tmp_path / "out", faces_dir / SOURCE)
    cancel = {"now": False}
    fake_nuke._fake.cancel = lambda name, updates: cancel["now"]
    clicked = time.monotonic()
    node["render"].execute()
    assert time.monotonic() - clicked < 2, "the button callback blocked Nuke"
    assert render.is_running(node)
    fake_nuke._fake.run_main_loop(lambda: started.exists(), 60)   # plates written in the main thread
    node["render"].execute()   # the impatient second click
    assert "already rendering" in fake_nuke._fake.messages[-1]
    time.sleep(0.5)
    assert started.read_text() == "x", "a second sidecar was started"
    cancel["now"] = True
    fake_nuke._fake.run_main_loop(lambda: not render.is_running(node), 30)
    assert node["status"].value() == "cancelled"
    updates = [m for name, p, m in fake_nuke._fake.progress if name == "FaceBridge render"]
    assert updates and updates[0] == "start"


def test_paths_survive_tcl_and_nodes_in_groups_get_their_own_folders(fake_nuke, fake_cli: Path, plates: str,
                                                                     faces_dir: Path, tmp_path: Path) -> None:
    """Item 13: paths with [ ] $ go through file knobs intact; Windows paths get forward slashes; a
    FaceBridge1 inside Group1 does not share the folder of the FaceBridge1 at the top level."""
    from facebridge_nuke.node import knob_path, read_settings

    shots = tmp_path / "sh$010 [v1]"
    shots.mkdir()
    _read, node = _script(fake_nuke, plates, tmp_path / "unused", faces_dir / SOURCE)
    node["output_dir"].setValue("")
    fake_nuke.scriptSaveAs(str(shots / "comp.nk"))
    _press(fake_nuke, node, "render")
    assert node["status"].value().startswith("3 frames: 3 ok"), node["status"].value()
    out = shots / "facebridge" / "comp" / "FaceBridge1"
    assert sorted(p.name for p in out.glob("FaceBridge1.*.exr")) == ["FaceBridge1.%d.exr" % f for f in (1001, 1002, 1003)]
    assert node.node("Results")["file"].evaluate() == str(out / "FaceBridge1.####.exr")
    shown, _ = _node_output(fake_nuke, node, 1001, tmp_path / "shown.exr")
    assert np.all(shown == np.float32(0.9))

    assert knob_path(r"C:\shots\sh010\FaceBridge1.####.exr", "\\") == "C:/shots/sh010/FaceBridge1.####.exr"
    assert knob_path("/a/b\\c[1]$x", "/") == "/a/b\\\\c\\[1\\]\\$x"
    node["output_dir"].setValue("[file dirname [value root.name]]/renders")   # an artist's TCL expression
    assert read_settings(node).folders.output_dir == str(shots / "renders")

    node["output_dir"].setValue("")
    group = fake_nuke.nodes.Group()
    with group:
        fake_nuke._fake.menus["Nodes"].findItem("facebridge/FaceBridge").invoke()
    inner = group.node("FaceBridge1")
    assert inner is not None and inner.fullName() == "Group1.FaceBridge1"
    inner["sources"].setValue(str(faces_dir / SOURCE))
    assert read_settings(inner).folders.output_dir != read_settings(node).folders.output_dir


def test_the_scripts_working_space_goes_to_the_sidecar(fake_nuke, fake_cli: Path, plates: str, faces_dir: Path,
                                                       tmp_path: Path) -> None:
    """Item 14: an ACES script's plates are ACEScg: the sidecar is told, unless the knob says otherwise."""
    _read, node = _script(fake_nuke, plates, tmp_path / "out", faces_dir / SOURCE)
    root = fake_nuke.root()
    root["colorManagement"].setValue("OCIO")
    root["OCIO_config"].setValue("aces_1.2")
    root["workingSpaceLUT"].setValue("ACES - ACEScg")
    _press(fake_nuke, node, "render")
    pairs = dict(zip(_argv(fake_cli, "process"), _argv(fake_cli, "process")[1:]))
    assert pairs["--colorspace"] == "ACES - ACEScg"
    node["colorspace"].setValue("ACES2065-1")   # the knob wins
    _press(fake_nuke, node, "analyse")
    _press(fake_nuke, node, "render")
    pairs = dict(zip(_argv(fake_cli, "process"), _argv(fake_cli, "process")[1:]))
    assert pairs["--colorspace"] == "ACES2065-1"


def test_open_panel_starts_the_panel_and_get_from_panel_applies_its_choice(fake_nuke, plates: str, faces_dir: Path,
                                                                          tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 15: Open Panel runs ``facebridge panel`` as its own process on the node's shot, plates, sources
    and knobs (set A); the panel's "Apply to node" file comes back into the knobs in one undo step."""
    from facebridge_nuke import panel as fb_panel
    from facebridge_nuke.node import read_settings

    from host_plugins.common.presets import load_preset, save_preset

    log = tmp_path / "panel_argv.json"
    fake_panel = tmp_path / "fake_panel.py"
    fake_panel.write_text(f"import json, sys\nopen({str(log)!r}, 'w').write(json.dumps(sys.argv[1:]))\n")
    monkeypatch.setenv("FACEBRIDGE_CLI", json.dumps([sys.executable, str(fake_panel)]))
    monkeypatch.setenv("PYTHONPATH", "/nuke/site-packages")   # Nuke's: the panel must not inherit it
    _read, node = _script(fake_nuke, plates, tmp_path / "out", faces_dir / SOURCE, server="127.0.0.1:1")
    node["open_panel"].execute()
    assert "press Analyse first" in node["status"].value() and "press Analyse first" in fake_nuke._fake.messages[-1]
    assert not log.exists()

    settings = read_settings(node)
    plate_dir = Path(settings.folders.work_dir) / "analyse"   # what Analyse leaves behind
    plate_dir.mkdir(parents=True)
    for frame in (1001, 1002, 1003):
        (plate_dir / ("plate.%d.exr" % frame)).write_bytes(Path(plates.replace("####", str(frame))).read_bytes())
    process = fb_panel.open_panel(node)
    assert process is not None
    process.wait(timeout=30)
    argv = json.loads(log.read_text())
    pairs = dict(zip(argv, argv[1:]))
    assert argv[0] == "panel" and pairs["--input"] == str(plate_dir / "plate.####.exr")
    assert pairs["--source"] == str(faces_dir / SOURCE) and pairs["--server"] == "127.0.0.1:1"
    assert pairs["--to-node"] == fb_panel.to_node_path(settings)
    assert pairs["--shot"].startswith("nuke-")
    a_params, a_name = load_preset(pairs["--preset-a"])
    assert a_name == "FaceBridge1" and a_params["blend"] == 0.9 and a_params["regions"] == {"mouth": 0.5}

    node["get_from_panel"].execute()
    assert "nothing from the panel yet" in node["status"].value()
    chosen = dict(a_params, blend=0.4, regions={"eyes": 0.25}, colour_match="histogram")
    save_preset(pairs["--to-node"], chosen, name="B")   # the panel's "Apply to node" with set B
    undo_before = len(fake_nuke._fake.undo)
    node["get_from_panel"].execute()
    assert node["blend"].value() == 0.4 and node["region_eyes"].value() == 0.25 and node["region_mouth"].value() == 1.0
    assert node["colour_match"].value() == "histogram" and node["colorspace"].value() == ""
    steps = fake_nuke._fake.undo[undo_before:]
    assert steps[0][0] == "FaceBridge: settings B from the panel"
    assert {k for _n, k in steps[0][1]} == {"blend", "region_eyes", "region_mouth", "colour_match"}
    assert "settings B from the panel applied" in node["status"].value()


# --- Send to farm (issue 14 item 6) ------------------------------------------------------------------

FAKE_FARM_CLI = '''
import json, os, sys
open(os.environ["FB_ARGV_LOG"], "a").write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[2] == "opencue" and "--dry-run" in sys.argv:
    print("<spec><job name='x'/></spec>")
else:
    print("submitted job-1 to Cuebot: analyse, then 1 render task(s)")
'''


def test_send_to_farm_runs_facebridge_farm_with_the_nodes_settings(fake_nuke, plates: str, faces_dir: Path,
                                                                    tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The button writes the plates of the whole range (kept, for the farm), then runs ``facebridge farm`` in the
    worker thread with what Render would run: the knobs, input, output, frames, sources, shot, plus the Farm tab."""
    from facebridge_nuke import render
    from facebridge_nuke.node import read_settings

    from facebridge.client.options import render_params
    from facebridge.farm.command import add_farm_parser
    from host_plugins.common.sequence import shot_id

    script, log = tmp_path / "fake_farm_cli.py", tmp_path / "argv.jsonl"
    script.write_text(FAKE_FARM_CLI)
    monkeypatch.setenv("FACEBRIDGE_CLI", json.dumps([sys.executable, str(script)]))
    monkeypatch.setenv("FB_ARGV_LOG", str(log))
    out = tmp_path / "out"
    _read, node = _script(fake_nuke, plates, out, faces_dir / SOURCE)
    node["colour_match"].setValue("histogram")
    assert {"farm_scheduler", "farm_chunk", "farm_bundle", "farm_dry_run"} <= set(node.knobs())
    assert node["farm_scheduler"].value() == "openjd" and node["farm_chunk"].value() == 10   # the defaults
    node["farm_scheduler"].setValue("opencue")
    node["farm_chunk"].setValue(2)
    node["farm_show"].setValue("show1")
    node["farm_user"].setValue("artist")
    node["send_to_farm"].execute()   # returns at once; the job runs in a worker thread
    fake_nuke._fake.run_main_loop(lambda: not render.is_running(node), 60)
    argv = _argv(log, "farm")
    settings = read_settings(node)
    parser = __import__("argparse").ArgumentParser(prog="facebridge")
    add_farm_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    assert (args.scheduler, args.chunk, args.show, args.user, args.dry_run) == ("opencue", 2, "show1", "artist", False)
    assert render_params(args).as_dict() == settings.params   # every knob, the working space filled in
    assert render_params(args).colour_match == "histogram" and render_params(args).colorspace == "lin_rec709"
    assert (args.frames, args.analyse_range, args.source) == ("1001-1003", "1001-1003", [str(faces_dir / SOURCE)])
    assert args.input == str(out / "work" / "farm" / "plate.####.exr")
    assert args.output == str(out / "FaceBridge1.####.exr") and args.server is None
    assert args.shot == shot_id("nuke", str(out / "FaceBridge1.####.exr"))   # Render's shot id
    kept = sorted(p.name for p in (out / "work" / "farm").glob("plate.*.exr"))
    assert kept == ["plate.1001.exr", "plate.1002.exr", "plate.1003.exr"], "the farm reads the plates later"
    status = node["status"].value()
    assert status.startswith("submitted job-1 to Cuebot") and "chunks of 2" in status
    assert str(out / "FaceBridge1.####.exr") in status and fake_nuke._fake.messages == []

    node["farm_dry_run"].setValue(True)
    node["farm_bundle"].setValue(str(tmp_path / "jobs"))
    _press(fake_nuke, node, "send_to_farm")
    assert "--dry-run" in _argv(log, "farm")
    spec = tmp_path / "jobs" / "opencue_job.xml"
    assert node["status"].value().startswith("OpenCue dry run, nothing submitted: the job spec is in %s" % spec)
    assert spec.read_text() == "<spec><job name='x'/></spec>\n"

    runs = len(log.read_text().splitlines())
    node["farm_chunk"].setValue(0)
    _press(fake_nuke, node, "send_to_farm")
    assert node["status"].value() == "error: the farm chunk must be a positive whole number of frames, got '0'"
    assert "positive whole number" in fake_nuke._fake.messages[-1]
    assert len(log.read_text().splitlines()) == runs, "nothing ran"


def test_send_to_farm_writes_an_openjd_bundle_that_openjd_check_accepts(fake_nuke, plates: str, faces_dir: Path,
                                                                        tmp_path: Path) -> None:
    """The real ``facebridge farm openjd`` run by the node: a valid bundle in <output>/farm, the node's values."""
    out = tmp_path / "out"
    _read, node = _script(fake_nuke, plates, out, faces_dir / SOURCE)
    node["farm_chunk"].setValue(2)
    _press(fake_nuke, node, "send_to_farm")
    status = node["status"].value()
    bundle = out / "farm"
    assert status.startswith("wrote %s: analyse, then 2 render task(s) of up to 2 frame(s)" % bundle), status
    assert "deadline bundle submit" in status
    openjd = str(Path(sys.executable).parent / "openjd")
    check = subprocess.run([openjd, "check", str(bundle / "template.yaml")], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
    assert check.returncode == 0, check.stdout
    values = json.loads((bundle / "job_params.json").read_text())
    assert values["InputPattern"] == str(out / "work" / "farm" / "plate.####.exr")
    assert values["OutputPattern"] == str(out / "FaceBridge1.####.exr") and values["Source1"] == str(faces_dir / SOURCE)
    assert values["Frames"] == "1001-1003" and values["ChunkSize"] == 2
    assert values["FacebridgeCommand"] == sys.executable   # the farm runs this facebridge (-m facebridge)
    template = (bundle / "template.yaml").read_text()
    assert "--blend" in template and "0.9" in template and "mouth=0.5" in template
