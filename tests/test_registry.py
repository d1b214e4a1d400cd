"""The model registry: the shipped JSON, models-dir precedence, sha256 states, choosing, the digest memo.

Everything runs on small real files in temporary directories; their sha256 is computed here and written
into a temporary registry, so no model file is needed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from inference_server.models import registry as reg
from inference_server.models.errors import (
    ModelError,
    ModelInvalid,
    ModelNotFound,
    ModelRefused,
)

BRIEF_NAMES = {
    "inswapper_128", "arcface_w600k_r50", "gpen_bfr_256", "gpen_bfr_512", "gpen_bfr_1024", "gpen_bfr_2048",
    "GPEN-BFR-512", "GPEN-BFR-256", "bisenet_resnet_34", "bisenet_resnet_18", "dlib-hog", "dlib-68",
    "dlib-resnet", "classical-swap", "classical-enhancer",
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry(name: str, kind: str = "swapper", fmt: str = "onnx", file: str | None = "", data: bytes | None = None,
          preference: int = 50, **extra: Any) -> dict[str, Any]:
    """A registry entry; ``data`` gives the sha256 of that content, ``file=""`` means ``<name>.<fmt>``."""
    record: dict[str, Any] = {
        "name": name, "kind": kind, "format": fmt,
        "file": f"{name}.{fmt}" if file == "" else file,
        "sha256": sha(data) if data is not None else None,
        "size": 128, "template": "arcface_128", "normalisation": "[0,1]",
        "inputs": {"target": [1, 3, 128, 128], "source": [1, 512]},
        "licence": "test", "preference": preference,
    }
    if data is not None:
        record["source"] = "computed in the test"
    record.update(extra)
    return record


def embedded_entry(name: str, kind: str) -> dict[str, Any]:
    return entry(name, kind, fmt="embedded", file=None, preference=0, size=None, template=None,
                 normalisation=None, inputs={})


def write_registry(directory: Path, entries: list[dict[str, Any]]) -> Path:
    path = directory / "registry.json"
    path.write_text(json.dumps({"schema": 1, "models": entries}), encoding="utf-8")
    return path


GOOD = b"good swapper weights"
BETTER = b"better swapper weights"
RESTORER = b"restorer weights"


@pytest.fixture
def setup(tmp_path: Path) -> tuple[tuple[reg.ModelRecord, ...], Path]:
    """A registry of swappers and restorers and a models dir holding some of their files."""
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    records = reg.load_records(write_registry(tmp_path, [
        entry("best_swap", data=b"the real best weights", preference=100),   # present but altered
        entry("better_swap", data=BETTER, preference=80),                    # verified
        entry("good_swap", data=GOOD, preference=60),                        # verified
        entry("nohash_swap", preference=90),                                 # present, no sha256
        entry("absent_swap", data=b"never written", preference=95),          # missing
        embedded_entry("builtin-swap", "swapper"),
        entry("restore_512", kind="restorer", data=RESTORER),                 # missing here
        embedded_entry("builtin-restore", "restorer"),
    ]))
    (models_dir / "best_swap.onnx").write_bytes(b"tampered weights")
    (models_dir / "better_swap.onnx").write_bytes(BETTER)
    (models_dir / "good_swap.onnx").write_bytes(GOOD)
    (models_dir / "nohash_swap.onnx").write_bytes(b"weights nobody published a hash for")
    return records, models_dir


def by_name(statuses: list[reg.ModelStatus]) -> dict[str, reg.ModelStatus]:
    return {s.record.name: s for s in statuses}


# -- the shipped registry --------------------------------------------------------------------------

def test_shipped_registry_loads_and_every_record_is_well_formed() -> None:
    records = reg.load_records()
    names = [r.name for r in records]
    assert BRIEF_NAMES <= set(names)
    assert len(names) == len(set(names))
    for r in records:
        assert r.kind in reg.KINDS and r.format in reg.FORMATS
        assert r.template in (*reg.TEMPLATES, None)
        assert r.template in {"arcface_112_v1", "arcface_112_v2", "arcface_128", "ffhq_512", "mtcnn_512", None}
        assert r.normalisation in (*reg.NORMALISATIONS, None)
        assert r.licence.strip()
        if r.sha256 is not None:
            assert len(r.sha256) == 64 and int(r.sha256, 16) >= 0 and r.source
        if r.format in ("onnx", "pth") and r.kind == "converter":  # vectors in and out: no image size or template
            assert r.inputs and r.size is None and r.template is None and r.normalisation is None
        elif r.format in ("onnx", "pth"):
            assert r.file is not None and Path(r.file).suffix in reg.FILE_SUFFIXES[r.format]
            assert r.size and r.normalisation and r.inputs
            # aligned models name their template; detectors and landmarkers work on boxes, not aligned crops
            assert bool(r.template) == (r.kind not in ("detector", "landmarker")), r.name
        if r.format == "embedded":
            assert r.file is None and r.sha256 is None
        assert all(n in names for n in r.requires)
    for kind in set(reg.KINDS) - reg.NAMED_ONLY_KINDS:  # an embedded fallback, so a default always exists
        assert any(r.kind == kind and r.embedded for r in records), kind


def test_shipped_registry_facts() -> None:
    records = {r.name: r for r in reg.load_records()}
    swapper = records["inswapper_128"]
    assert (swapper.kind, swapper.format, swapper.size, swapper.template) == ("swapper", "onnx", 128, "arcface_128")
    assert dict(swapper.inputs) == {"target": (1, 3, 128, 128), "source": (1, 512)}
    assert swapper.requires == ("arcface_w600k_r50",)
    embedder = records["arcface_w600k_r50"]
    assert (embedder.kind, embedder.size, embedder.template, embedder.normalisation) == \
        ("embedder", 112, "arcface_112_v2", "[-1,1]")
    for size in (256, 512, 1024, 2048):
        gpen = records[f"gpen_bfr_{size}"]
        assert (gpen.kind, gpen.format, gpen.size) == ("restorer", "onnx", size)
        assert gpen.template == ("arcface_128" if size == 256 else "ffhq_512")
    for name in ("GPEN-BFR-512", "GPEN-BFR-256"):
        assert (records[name].kind, records[name].format) == ("restorer", "pth")
    for name in ("bisenet_resnet_34", "bisenet_resnet_18"):
        assert (records[name].kind, records[name].size, records[name].normalisation) == ("parser", 512, "imagenet")
    assert [(records[n].kind, records[n].format) for n in ("dlib-hog", "dlib-68", "dlib-resnet")] == \
        [("detector", "dlib"), ("landmarker", "dlib"), ("embedder", "dlib")]
    assert (records["classical-swap"].kind, records["classical-swap"].format) == ("swapper", "embedded")
    assert (records["classical-enhancer"].kind, records["classical-enhancer"].format) == ("restorer", "embedded")


def test_shipped_registry_is_next_to_the_module() -> None:
    assert reg.default_registry_path() == Path(reg.__file__).with_name("registry.json")


def test_embedded_records_point_to_files_in_face_recognition_models(tmp_path: Path) -> None:
    spec = importlib.util.find_spec("face_recognition_models")  # located, never imported
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("face-recognition-models is not installed")
    package_models = Path(next(iter(spec.submodule_search_locations))) / "models"
    imported_before = "face_recognition_models" in sys.modules
    records = reg.load_records()
    dlib_files = [r.file for r in records if r.format == "dlib" and r.file is not None]
    assert {"shape_predictor_68_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat"} <= set(dlib_files)
    for name in dlib_files:
        assert (package_models / name).is_file(), name
    assert reg.embedded_models_dir() == package_models
    statuses = by_name(reg.scan(tmp_path, records))
    for record in records:
        if record.embedded:
            assert statuses[record.name].state == "embedded"
            if record.file is not None:
                assert statuses[record.name].path == package_models / record.file
    assert imported_before or "face_recognition_models" not in sys.modules


def test_missing_embedded_package_makes_dlib_records_missing(tmp_path: Path) -> None:
    statuses = by_name(reg.scan(tmp_path, reg.load_records(), embedded_dir=tmp_path / "nowhere"))
    assert statuses["dlib-68"].state == "missing"
    assert statuses["dlib-hog"].state == "embedded"  # compiled into dlib, no file
    with pytest.raises(ModelNotFound, match="face-recognition-models"):
        reg.choose("landmarker", "dlib-68", list(statuses.values()))


# -- registry validation ---------------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    ({"kind": "morpher"}, "kind must be one of"),
    ({"format": "tflite"}, "format must be one of"),
    ({"template": "arcface_96"}, "template must be one of"),
    ({"sha256": "ABC"}, "sha256 must be 64 lowercase hex"),
    ({"file": "weights.bin"}, "must end in .onnx"),
    ({"file": "../escape.onnx"}, "bare file name"),
    ({"inputs": {"target": [1, 3, -1]}}, "shape of positive integers"),
    ({"preference": "high"}, "preference must be an integer"),
    ({"colour": "red"}, "unknown keys"),
    ({"source": None, "sha256": "0" * 64}, "needs a \"source\""),
])
def test_bad_record_names_file_and_record(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    bad = entry("broken_swap", data=b"x")
    bad.update(change)
    path = write_registry(tmp_path, [entry("fine_swap"), bad])
    with pytest.raises(ModelInvalid) as raised:
        reg.load_records(path)
    text = str(raised.value)
    assert str(path) in text and "record #1" in text and "'broken_swap'" in text and message in text


def test_registry_level_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelInvalid, match="duplicate names"):
        reg.load_records(write_registry(tmp_path, [entry("twin"), entry("twin", file="other.onnx")]))
    with pytest.raises(ModelInvalid, match="requires unknown models"):
        reg.load_records(write_registry(tmp_path, [entry("needy", requires=["ghost"])]))
    missing_key = entry("keyless")
    del missing_key["licence"]
    with pytest.raises(ModelInvalid, match="missing keys"):
        reg.load_records(write_registry(tmp_path, [missing_key]))
    (tmp_path / "junk.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelInvalid, match="junk.json"):
        reg.load_records(tmp_path / "junk.json")


# -- models directory precedence -------------------------------------------------------------------

def test_models_dir_precedence(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"models_dir": str(tmp_path / "from-config")}), encoding="utf-8")
    env = {"HOME": str(home), "FACEBRIDGE_MODELS_DIR": str(tmp_path / "from-env"),
           "XDG_DATA_HOME": str(tmp_path / "data")}

    assert reg.resolve_models_dir(str(tmp_path / "cli"), env, config) == tmp_path / "cli"
    assert reg.resolve_models_dir(None, env, config) == tmp_path / "from-env"
    no_env = {k: v for k, v in env.items() if k != "FACEBRIDGE_MODELS_DIR"}
    assert reg.resolve_models_dir(None, no_env, config) == tmp_path / "from-config"
    assert reg.resolve_models_dir(None, no_env, tmp_path / "absent.json") == tmp_path / "data" / "facebridge" / "models"
    assert reg.resolve_models_dir(None, {"HOME": str(home)}, tmp_path / "absent.json") == \
        home / ".local" / "share" / "facebridge" / "models"
    # empty values do not count
    assert reg.resolve_models_dir("", {**env, "FACEBRIDGE_MODELS_DIR": ""}, config) == tmp_path / "from-config"


def test_models_dir_config_file_location_and_values(tmp_path: Path) -> None:
    home = tmp_path / "home"
    xdg_config = tmp_path / "xdg-config" / "facebridge"
    xdg_config.mkdir(parents=True)
    (xdg_config / "config.json").write_text(json.dumps({"models_dir": "weights"}), encoding="utf-8")
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(tmp_path / "xdg-config")}
    assert reg.default_config_file(env) == xdg_config / "config.json"
    assert reg.resolve_models_dir(None, env) == xdg_config / "weights"  # relative to the config file

    home_config = home / ".config" / "facebridge"
    home_config.mkdir(parents=True)
    (home_config / "config.json").write_text(json.dumps({"models_dir": "~/face-models", "other": 1}),
                                             encoding="utf-8")
    assert reg.resolve_models_dir(None, {"HOME": str(home)}) == home / "face-models"
    assert reg.resolve_models_dir("~/cli-models", {"HOME": str(home)}) == home / "cli-models"

    (home_config / "config.json").write_text(json.dumps({"unrelated": True}), encoding="utf-8")
    assert reg.resolve_models_dir(None, {"HOME": str(home)}) == home / ".local" / "share" / "facebridge" / "models"

    (home_config / "config.json").write_text("[1, 2", encoding="utf-8")
    with pytest.raises(ModelError, match="config.json"):
        reg.resolve_models_dir(None, {"HOME": str(home)})
    (home_config / "config.json").write_text(json.dumps({"models_dir": 7}), encoding="utf-8")
    with pytest.raises(ModelError, match="models_dir"):
        reg.resolve_models_dir(None, {"HOME": str(home)})


# -- scanning --------------------------------------------------------------------------------------

def test_scan_states(setup: tuple[tuple[reg.ModelRecord, ...], Path]) -> None:
    records, models_dir = setup
    statuses = by_name(reg.scan(models_dir, records))
    assert [s.record.name for s in reg.scan(models_dir, records)] == [r.name for r in records]
    assert statuses["better_swap"].state == "verified" and statuses["better_swap"].verified
    assert statuses["better_swap"].digest == sha(BETTER)
    assert statuses["best_swap"].state == "hash-mismatch" and statuses["best_swap"].unverified
    assert statuses["best_swap"].digest == sha(b"tampered weights")
    assert statuses["nohash_swap"].state == "no-hash" and statuses["nohash_swap"].unverified
    assert statuses["absent_swap"].state == "missing"
    assert statuses["absent_swap"].path == models_dir / "absent_swap.onnx"
    assert statuses["builtin-swap"].state == "embedded" and statuses["builtin-swap"].path is None


def test_sha256_file_streams_across_blocks(tmp_path: Path) -> None:
    data = os.urandom((1 << 20) * 2 + 12345)
    (tmp_path / "big.bin").write_bytes(data)
    assert reg.sha256_file(tmp_path / "big.bin") == sha(data)


# -- choosing --------------------------------------------------------------------------------------

def test_default_picks_best_verified_by_preference(setup: tuple[tuple[reg.ModelRecord, ...], Path]) -> None:
    records, models_dir = setup
    choice = reg.choose("swapper", None, reg.scan(models_dir, records))
    assert choice.record.name == "better_swap"  # best_swap/nohash_swap rank higher but do not verify
    assert choice.verified and not choice.embedded
    assert choice.path == models_dir / "better_swap.onnx" and choice.digest == sha(BETTER)
    assert "better_swap" in choice.note and "verified" in choice.note


def test_default_falls_back_to_embedded(setup: tuple[tuple[reg.ModelRecord, ...], Path]) -> None:
    records, models_dir = setup
    restorer = reg.choose("restorer", None, reg.scan(models_dir, records))
    assert restorer.record.name == "builtin-restore"
    assert restorer.embedded and restorer.path is None and not restorer.verified

    (models_dir / "better_swap.onnx").unlink()
    (models_dir / "good_swap.onnx").write_bytes(b"changed")
    swapper = reg.choose("swapper", None, reg.scan(models_dir, records), allow_unverified=True)
    assert swapper.record.name == "builtin-swap" and swapper.embedded
    # the note says which files were present but not used, and how to use one anyway
    assert "best_swap" in swapper.note and "nohash_swap" in swapper.note and "--allow-unverified" in swapper.note


def test_default_without_any_candidate(tmp_path: Path) -> None:
    records = reg.load_records(write_registry(tmp_path, [entry("only_swap", data=b"x")]))
    with pytest.raises(ModelNotFound, match="no swapper model available"):
        reg.choose("swapper", None, reg.scan(tmp_path, records))
    with pytest.raises(ValueError, match="unknown model kind"):
        reg.choose("morpher", None, reg.scan(tmp_path, records))


def test_choose_by_name(setup: tuple[tuple[reg.ModelRecord, ...], Path]) -> None:
    records, models_dir = setup
    statuses = reg.scan(models_dir, records)
    good = reg.choose("swapper", "good_swap", statuses)
    assert good.record.name == "good_swap" and good.verified and good.path == models_dir / "good_swap.onnx"
    assert reg.choose("swapper", "GOOD_SWAP", statuses).record.name == "good_swap"
    builtin = reg.choose("swapper", "builtin-swap", statuses)
    assert builtin.embedded and builtin.path is None

    with pytest.raises(ModelNotFound) as missing:
        reg.choose("swapper", "absent_swap", statuses)
    assert str(models_dir / "absent_swap.onnx") in str(missing.value)

    with pytest.raises(ModelNotFound) as unknown:
        reg.choose("swapper", "mystery", statuses)
    for name in ("better_swap", "good_swap", "builtin-swap"):
        assert name in str(unknown.value)
    assert "restore_512" not in str(unknown.value)

    with pytest.raises(ModelNotFound, match="is a restorer"):
        reg.choose("swapper", "restore_512", statuses)


def test_unverified_name_refused_then_allowed(setup: tuple[tuple[reg.ModelRecord, ...], Path]) -> None:
    records, models_dir = setup
    statuses = reg.scan(models_dir, records)
    for name, reason in (("best_swap", "sha256 differs from the registry"),
                         ("nohash_swap", "the registry has no sha256")):
        with pytest.raises(ModelRefused) as refused:
            reg.choose("swapper", name, statuses)
        message = str(refused.value)
        assert "--allow-unverified" in message and reason in message and "\n" not in message
        allowed = reg.choose("swapper", name, statuses, allow_unverified=True)
        assert allowed.record.name == name and not allowed.verified and not allowed.embedded
        assert allowed.path == models_dir / f"{name}.onnx"
        assert allowed.note.startswith(f"{name}: {reason}") and "used because --allow-unverified" in allowed.note


def test_choose_by_path(setup: tuple[tuple[reg.ModelRecord, ...], Path], tmp_path: Path) -> None:
    records, models_dir = setup
    statuses = reg.scan(models_dir, records)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    renamed = elsewhere / "my-copy.onnx"  # matched by hash whatever its name
    renamed.write_bytes(GOOD)
    choice = reg.choose("swapper", str(renamed), statuses)
    assert choice.record.name == "good_swap" and choice.verified and choice.path == renamed

    same_name = elsewhere / "best_swap.onnx"  # matched by file name, hash differs
    same_name.write_bytes(b"another edit")
    with pytest.raises(ModelRefused, match="--allow-unverified"):
        reg.choose("swapper", str(same_name), statuses)
    allowed = reg.choose("swapper", str(same_name), statuses, allow_unverified=True)
    assert allowed.record.name == "best_swap" and not allowed.verified and "sha256 differs" in allowed.note

    stranger = elsewhere / "homemade.onnx"  # not in the registry at all
    stranger.write_bytes(b"homemade weights")
    with pytest.raises(ModelRefused, match="not a registry model.*--allow-unverified"):
        reg.choose("swapper", str(stranger), statuses)
    used = reg.choose("swapper", str(stranger), statuses, allow_unverified=True)
    assert (used.record.name, used.record.kind, used.record.format) == ("homemade", "swapper", "onnx")
    assert used.path == stranger and used.digest == sha(b"homemade weights")
    assert "used because --allow-unverified" in used.note

    wrong_kind = elsewhere / "restorer-copy.onnx"
    wrong_kind.write_bytes(RESTORER)
    with pytest.raises(ModelInvalid, match="restore_512, a restorer, not a swapper"):
        reg.choose("swapper", str(wrong_kind), statuses)

    with pytest.raises(ModelNotFound, match="no such model file"):
        reg.choose("swapper", str(elsewhere / "nothing.onnx"), statuses)
    (elsewhere / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(ModelInvalid, match="not a model file type"):
        reg.choose("swapper", str(elsewhere / "notes.txt"), statuses, allow_unverified=True)


# -- digest memo -----------------------------------------------------------------------------------

def test_digest_memo_reused_and_invalidated(setup: tuple[tuple[reg.ModelRecord, ...], Path], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    records, models_dir = setup
    cache = tmp_path / "cache"
    hashed: list[str] = []
    real = reg.sha256_file

    def counting(path: Path | str) -> str:
        hashed.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(reg, "sha256_file", counting)
    present = sorted(p.name for p in models_dir.iterdir())

    first = reg.DigestMemo(cache)
    reg.scan(models_dir, records, first)
    assert sorted(hashed) == present and first.hashed == len(present)
    memo_data = json.loads((cache / reg.DIGEST_MEMO_FILE).read_text(encoding="utf-8"))
    key = os.path.abspath(models_dir / "good_swap.onnx")
    assert memo_data[key]["sha256"] == sha(GOOD) and memo_data[key]["size"] == len(GOOD)

    hashed.clear()
    second = reg.DigestMemo(cache)  # a fresh start reads the memo file
    again = by_name(reg.scan(models_dir, records, second))
    assert hashed == [] and second.hashed == 0
    assert again["good_swap"].state == "verified" and again["best_swap"].state == "hash-mismatch"

    (models_dir / "good_swap.onnx").write_bytes(GOOD + b" edited")  # size and mtime change
    third = reg.DigestMemo(cache)
    changed = by_name(reg.scan(models_dir, records, third))
    assert hashed == ["good_swap.onnx"] and changed["good_swap"].state == "hash-mismatch"

    hashed.clear()
    stat = os.stat(models_dir / "better_swap.onnx")  # same size, only the mtime moves
    os.utime(models_dir / "better_swap.onnx", ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    reg.scan(models_dir, records, reg.DigestMemo(cache))
    assert hashed == ["better_swap.onnx"]


def test_digest_memo_survives_a_corrupt_or_unwritable_cache(tmp_path: Path) -> None:
    model = tmp_path / "weights.onnx"
    model.write_bytes(GOOD)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / reg.DIGEST_MEMO_FILE).write_text("{broken", encoding="utf-8")
    memo = reg.DigestMemo(cache)
    assert memo.digest(model) == sha(GOOD) and memo.hashed == 1
    assert reg.DigestMemo(cache).digest(model) == sha(GOOD)  # rewritten as valid JSON

    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory", encoding="utf-8")
    assert reg.DigestMemo(blocked / "cache").digest(model) == sha(GOOD)  # write fails silently


# -- listing ---------------------------------------------------------------------------------------

def test_format_listing(setup: tuple[tuple[reg.ModelRecord, ...], Path]) -> None:
    records, models_dir = setup
    text = reg.format_listing(reg.scan(models_dir, records))
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "FORMAT", "STATE", "PATH", "LICENCE"]
    assert len(lines) == 1 + len(records)
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["good_swap"][:5] == ["good_swap", "swapper", "onnx", "verified", str(models_dir / "good_swap.onnx")]
    assert rows["best_swap"][3] == "hash-mismatch" and rows["nohash_swap"][3] == "no-hash"
    assert rows["absent_swap"][3] == "missing" and rows["builtin-swap"][3:5] == ["embedded", "(built-in)"]
    # grouped by kind (swappers before restorers), preferred first within a kind
    order = [line.split()[0] for line in lines[1:]]
    assert order.index("best_swap") < order.index("better_swap") < order.index("restore_512")


def test_shipped_listing_on_an_empty_models_dir(tmp_path: Path) -> None:
    statuses = reg.scan(tmp_path, reg.load_records())
    text = reg.format_listing(statuses)
    assert "inswapper_128" in text and "missing" in text and "classical-swap" in text
    defaults = {kind: reg.choose(kind, None, statuses).record.name for kind in reg.KINDS
                if kind not in reg.NAMED_ONLY_KINDS}
    assert defaults["swapper"] == "classical-swap" and defaults["restorer"] == "classical-enhancer"
    assert defaults["parser"] == "landmarks"
