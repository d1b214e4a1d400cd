"""``facebridge farm``: the OpenJD bundle (valid, run here with openjd-cli in chunks, bit-identical to one ``process``
run), the OpenCue job's spec (layers, range, chunk, dependency, command lines that run by hand), the missing
extra, bad settings. Never contacts a Cuebot."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import xml.etree.ElementTree as Et
from pathlib import Path

import numpy as np
import pytest
from support import make_sequence, read_exr, same_bits

from facebridge.cli import main
from facebridge.farm import job as farm_job

CLI = [sys.executable, "-m", "facebridge"]
OPENJD = str(Path(sys.executable).parent / "openjd")


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path / "home")}


def _fake_shot(folder: Path, count: int = 6) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for frame in range(1001, 1001 + count):
        (folder / f"plate.{frame}.exr").write_bytes(b"")
    (folder / "actor.jpg").write_bytes(b"")
    return str(folder / "plate.####.exr")


def test_ranges_and_chunks() -> None:
    assert farm_job.range_expr([1003, 1001, 1002, 1005]) == "1001-1003,1005"
    assert farm_job.chunks(list(range(1001, 1007)), 2) == ["1001-1002", "1003-1004", "1005-1006"]
    assert farm_job.chunks([1, 2, 3, 7, 8], 2) == ["1-2", "3", "7-8"]
    with pytest.raises(ValueError):
        farm_job.chunks([1], 0)


def test_openjd_bundle_is_valid_and_names_every_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plates = _fake_shot(tmp_path / "plates")
    bundle = tmp_path / "bundle"
    code = main(["farm", "openjd", "--input", plates, "--output", str(tmp_path / "out" / "swap.####.exr"),
                 "--source", str(tmp_path / "plates" / "actor.jpg"), "--chunk", "2", "--bundle", str(bundle),
                 "--blend", "0.75", "--shot", "sh010", "--cli", "/opt/fb/bin/facebridge"])
    assert code == 0
    assert "deadline bundle submit" in capsys.readouterr().out
    check = subprocess.run([OPENJD, "check", str(bundle / "template.yaml")], capture_output=True, text=True,
                           timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    import yaml

    template = yaml.safe_load((bundle / "template.yaml").read_text())
    assert template["specificationVersion"] == "jobtemplate-2023-09" and template["extensions"] == ["TASK_CHUNKING"]
    analyse, render = template["steps"]
    assert analyse["name"] == "Analyse" and render["name"] == "Render"
    assert render["dependencies"] == [{"dependsOn": "Analyse"}]
    (frames,) = render["parameterSpace"]["taskParameterDefinitions"]
    assert frames["type"] == "CHUNK[INT]" and frames["chunks"]["defaultTaskCount"] == "{{Param.ChunkSize}}"
    types = {p["name"]: p["type"] for p in template["parameterDefinitions"]}
    assert {k: types[k] for k in ("InputPattern", "OutputPattern", "AnalysisFile", "ReportDir", "Source1")} == \
        dict.fromkeys(("InputPattern", "OutputPattern", "AnalysisFile", "ReportDir", "Source1"), "PATH")
    args = render["script"]["actions"]["onRun"]["args"]
    assert args[args.index("--blend") + 1] == "0.75" and args[args.index("--frames") + 1] == "{{Task.Param.Frames}}"
    assert "--preset" not in args and all(f in args for f in ("--mode", "--smooth", "--stabilise", "--precision"))
    assert "--analysis-out" in analyse["script"]["actions"]["onRun"]["args"]
    values = json.loads((bundle / "job_params.json").read_text())
    assert values["ChunkSize"] == 2 and values["Frames"] == "1001-1006" and values["Shot"] == "sh010"
    assert values["FacebridgeCommand"] == "/opt/fb/bin/facebridge"
    deadline = yaml.safe_load((bundle / "parameter_values.yaml").read_text())["parameterValues"]
    assert {v["name"]: v["value"] for v in deadline} == values


def test_a_bad_setting_exits_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plates = _fake_shot(tmp_path / "plates")
    code = main(["farm", "openjd", "--input", plates, "--output", str(tmp_path / "out" / "o.####.exr"),
                 "--source", str(tmp_path / "plates" / "actor.jpg"), "--bundle", str(tmp_path / "b"),
                 "--blend", "7"])
    assert code == 2 and "blend" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(("scheduler", "module", "extra"), [("openjd", "openjd.model", ["--bundle", "b"]),
                                                            ("opencue", "outline", ["--dry-run"])])
def test_without_the_extra_farm_names_it_and_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str], scheduler: str, module: str,
                                                     extra: list[str]) -> None:
    plates = _fake_shot(tmp_path / "plates")
    monkeypatch.setitem(sys.modules, module, None)  # the import fails as if the package were not installed
    monkeypatch.chdir(tmp_path)
    code = main(["farm", scheduler, "--input", plates, "--output", str(tmp_path / "out" / "o.####.exr"),
                 "--source", str(tmp_path / "plates" / "actor.jpg")] + extra)
    assert code == 2
    assert "pip install 'facebridge[farm]'" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def _cue_spec(tmp_path: Path, plates: str, output: str, source: str, monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture[str], *more: str, shot: str = "sh010") -> Et.Element:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # pyoutline keeps its session folder under ~/.opencue
    monkeypatch.setenv("SHOW", "envshow")
    code = main(["farm", "opencue", "--input", plates, "--output", output, "--source", source, "--chunk", "2",
                 "--dry-run", "--user", "artist", "--shot", shot] + list(more))
    assert code == 0
    xml = capsys.readouterr().out
    return Et.fromstring(xml[xml.index("<spec>"):])


def test_opencue_dry_run_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    plates = _fake_shot(tmp_path / "plates")
    spec = _cue_spec(tmp_path, plates, str(tmp_path / "out" / "o.####.exr"), str(tmp_path / "plates" / "actor.jpg"),
                     monkeypatch, capsys, "--blend", "0.5")
    assert spec.findtext("show") == "envshow" and spec.findtext("user") == "artist"
    layers = {layer.get("name"): layer for layer in spec.iter("layer")}
    assert list(layers) == ["analyse", "render"]
    assert layers["analyse"].findtext("range") == "1001" and layers["analyse"].findtext("chunk") == "1"
    assert layers["render"].findtext("range") == "1001-1006" and layers["render"].findtext("chunk") == "2"
    (depend,) = spec.iter("depend")
    assert depend.get("type") == "LAYER_ON_LAYER"
    assert depend.findtext("deplayer") == "render" and depend.findtext("onlayer") == "analyse"
    render = shlex.split(layers["render"].findtext("cmd") or "")
    assert render[:4] == CLI + ["process"] and render[render.index("--blend") + 1] == "0.5"
    assert render[render.index("--frames") + 1] == "#FRAME_START#-#FRAME_END#"
    assert "--analysis-out" in shlex.split(layers["analyse"].findtext("cmd") or "")


def _shot(faces_dir: Path, tmp_path: Path) -> tuple[str, str]:
    plates = make_sequence(faces_dir / "lp_d18.mp4", tmp_path / "plates", 6)
    return plates, str(faces_dir / "lp_d12.jpg")


def _same_outputs(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.glob("*.exr"))
    assert names == sorted(p.name for p in b.glob("*.exr")) and len(names) == 6
    for name in names:
        pa, _ = read_exr(a / name)
        pb, _ = read_exr(b / name)
        assert pa.shape == pb.shape and bool(same_bits(pa, pb).all()), name


@pytest.fixture(scope="module")
def plain_run(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str, float]:
    """One plain ``facebridge process`` run of the 6-frame shot: (outputs, plates, source, wall seconds)."""
    tmp_path = tmp_path_factory.mktemp("farm-plain")
    plates, source = _shot(faces_dir, tmp_path)
    started = time.monotonic()
    proc = subprocess.run(CLI + ["process", "--input", plates, "--output", str(tmp_path / "out" / "swap.####.exr"),
                                 "--source", source, "--progress", "none", "--shot", "farm-e2e"],
                          capture_output=True, text=True, timeout=900, env=_env(tmp_path), stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "out", plates, source, time.monotonic() - started


def test_openjd_bundle_runs_here_in_chunks_bit_identical_to_one_process_run(
        plain_run: tuple[Path, str, str, float], tmp_path: Path) -> None:
    plain, plates, source, plain_s = plain_run
    out = tmp_path / "out"
    bundle = tmp_path / "bundle"
    write = subprocess.run(CLI + ["farm", "openjd", "--input", plates, "--output", str(out / "swap.####.exr"),
                                  "--source", source, "--chunk", "2", "--bundle", str(bundle), "--shot", "farm-e2e"],
                           capture_output=True, text=True, timeout=300, env=_env(tmp_path))
    assert write.returncode == 0, write.stderr
    started = time.monotonic()
    run = subprocess.run([OPENJD, "run", str(bundle / "template.yaml"), "-p", f"file://{bundle / 'job_params.json'}",
                          "--step", "Render", "--run-dependencies"],
                         capture_output=True, text=True, timeout=1200, env=_env(tmp_path))
    farm_s = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    print(f"wall time: openjd run (analyse + 3 chunks of 2) {farm_s:.1f} s, one process run {plain_s:.1f} s")
    _same_outputs(plain, out)
    reports = sorted(p.name for p in (out / "farm_reports").iterdir())
    assert reports == ["analyse.json", "render.1001-1002.json", "render.1003-1004.json", "render.1005-1006.json"]
    report = json.loads((out / "farm_reports" / "render.1003-1004.json").read_text())
    assert report["totals"]["frames"] == 2 and report["totals"]["failed"] == 0


def test_opencue_render_command_run_by_hand_gives_the_same_pixels(
        plain_run: tuple[Path, str, str, float], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    plain, plates, source, _ = plain_run
    out = tmp_path / "out"
    spec = _cue_spec(tmp_path, plates, str(out / "swap.####.exr"), source, monkeypatch, capsys, shot="farm-e2e")
    layers = {layer.get("name"): layer.findtext("cmd") or "" for layer in spec.iter("layer")}
    env = _env(tmp_path)
    analyse = subprocess.run(shlex.split(layers["analyse"]), capture_output=True,
                             text=True, timeout=900, env=env, stdin=subprocess.DEVNULL)
    assert analyse.returncode == 0, analyse.stderr
    for first, last in ((1001, 1002), (1003, 1004), (1005, 1006)):
        command = layers["render"].replace("#FRAME_START#", str(first)).replace("#FRAME_END#", str(last))
        render = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=900, env=env,
                                stdin=subprocess.DEVNULL)
        assert render.returncode == 0, render.stderr
    _same_outputs(plain, out)
    before = read_exr(out / "swap.1003.exr")[0]
    # a re-run of one chunk (a failed task retried) gives the same pixels
    (out / "swap.1003.exr").unlink()
    command = layers["render"].replace("#FRAME_START#", "1003")
    rerun = subprocess.run(shlex.split(command.replace("#FRAME_END#", "1004")), capture_output=True, text=True,
                           timeout=900, env=env, stdin=subprocess.DEVNULL)
    assert rerun.returncode == 0, rerun.stderr
    assert bool(np.all(same_bits(before, read_exr(out / "swap.1003.exr")[0])))
