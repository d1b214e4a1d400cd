"""The server's loaded models: chosen from the registry, loaded once, warmed up, shared by all sessions.

:class:`ModelPool` resolves a session's choices (``swapper``, ``restorer``, ``parser``, ``detector``,
``landmarker``: registry names or file paths, empty for the default) against the models directory, refuses
files that do not verify unless ``allow_unverified``, and hands out loaded adapters (:mod:`.adapters`). Loaded
models are keyed by file, digest, device and precision, so two sessions asking for the same model share one
instance.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ModelInvalid, ModelNotFound, ModelRefused
from .registry import ALLOW_UNVERIFIED_FLAG, Choice, DigestMemo, ModelRecord, ModelStatus, choose, load_records, scan

if TYPE_CHECKING:  # (onnxruntime is imported when a model is loaded)
    import onnxruntime as ort

_LOG = logging.getLogger(__name__)
PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class Loaded:
    """A chosen model, loaded: ``adapter`` is None for the embedded defaults that need no object
    (the classical swap, landmark region masks)."""

    choice: Choice
    adapter: object | None
    model_id: str
    notes: tuple[str, ...] = ()


def model_id(choice: Choice) -> str:
    """``name@sha256[:16]`` of a file model, the record name of an embedded one."""
    if choice.embedded or not choice.digest:
        return choice.record.name
    return f"{choice.record.name}@{choice.digest[:16]}"


def _template_for(size: int) -> str:
    return "arcface_128" if size <= 256 else "ffhq_512"


def _onnx_square_size(path: Path) -> int:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    side = dims[-1].dim_value if len(dims) == 4 else 0
    if side <= 0:
        raise ModelInvalid(f"{path}: cannot tell the restorer's input size from its first input")
    return int(side)


def warm_up(session: ort.InferenceSession) -> None:
    """One run of an ONNX Runtime session on zeros of its inputs' shapes (free dimensions as 1), so the
    first frame does not pay for memory planning and kernel selection."""
    import numpy as np

    from .onnx_session import run_session

    feeds = {}
    for arg in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in arg.shape]
        feeds[arg.name] = np.zeros(shape, np.float32)
    run_session(session, feeds)


class ModelPool:
    """Models of one server.

    Args:
        models_dir: where model files are looked for.
        cache_dir: where the digest memo of model files lives.
        device: the server's device (``cpu``, ``cuda:N``, ``mps``), already resolved.
        slow_cpu_precision: run fp16/bf16 on a CPU without native support for them (very slow; tests),
            instead of running fp32 there and saying so.
        allow_unverified: the server's decision (``serve --allow-unverified``) that a session may ask for
            model files that do not verify; a session asking without it is refused.
    """

    def __init__(self, models_dir: Path, cache_dir: Path, device: str, slow_cpu_precision: bool = False,
                 allow_unverified: bool = False) -> None:
        self.models_dir = Path(models_dir)
        self.allow_unverified = allow_unverified
        self.device = device
        self.slow_cpu_precision = slow_cpu_precision
        self.records: tuple[ModelRecord, ...] = load_records()
        self.memo = DigestMemo(cache_dir)
        self._statuses: list[ModelStatus] | None = None
        self._loaded: dict[tuple[str, str, str, str], Loaded] = {}
        self._lock = threading.RLock()

    def statuses(self, rescan: bool = False) -> list[ModelStatus]:
        """The registry's models as found in the models directory (scanned once; ``rescan`` again)."""
        with self._lock:
            if self._statuses is None or rescan:
                self._statuses = scan(self.models_dir, self.records, self.memo)
            return self._statuses

    def model_file(self, kind: str, name: str) -> str:
        """``name`` as :func:`.registry.choose` should see it: a registry name as is, a file name as its path
        inside the models directory. Clients name models, never server paths: an absolute path, a folder
        part or ``..`` is refused with one message whether or not such a file exists (ModelRefused)."""
        text = name.strip()
        if not text or any(r.name.casefold() == text.casefold() for r in self.records):
            return text  # the default, or a registry name
        if any(sep in text for sep in ("/", "\\", "\0")) or text in (".", "..") or os.path.isabs(text):
            raise ModelRefused(f"{kind} '{text}': name a registry model or a file name in the server's models "
                               "directory (a private server takes --models-dir); paths are not accepted")
        if not Path(text).suffix:
            return text  # an unknown name: choose() lists the known ones
        return str(self.models_dir / text)  # (the operator's folder: a symlink there is the operator's choice)

    def choose(self, kind: str, name: str, allow_unverified: bool) -> Choice:
        """Registry choice of ``kind`` (see :func:`.registry.choose`); the models folder is rescanned
        when a named model is missing, so files added while the server runs are found.

        Raises:
            ModelRefused: ``allow_unverified`` asked of a server started without it; a path as ``name``.
        """
        if allow_unverified and not self.allow_unverified:
            raise ModelRefused("allow_unverified: this server does not load unverified models; it must be started "
                               f"with {ALLOW_UNVERIFIED_FLAG} (the person running it decides)")
        name = self.model_file(kind, name)
        try:
            return choose(kind, name or None, self.statuses(), allow_unverified, self.memo)
        except ModelInvalid:
            raise
        except Exception:
            if not name:
                raise
            return choose(kind, name, self.statuses(rescan=True), allow_unverified, self.memo)

    def load(self, kind: str, name: str, allow_unverified: bool, precision: str = "fp32") -> Loaded:
        """Choose and load a model of ``kind``; the same file at the same precision loads once."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision '{precision}' (expected {', '.join(PRECISIONS)})")
        choice = self.choose(kind, name, allow_unverified)
        key = (kind, str(choice.path or choice.record.name), choice.digest or "", precision)
        with self._lock:
            hit = self._loaded.get(key)
            if hit is not None:
                return hit
            loaded = self._load(kind, choice, precision, allow_unverified)
            self._loaded[key] = loaded
            return loaded

    def _load(self, kind: str, choice: Choice, precision: str, allow_unverified: bool) -> Loaded:
        record, path = choice.record, choice.path
        notes = [choice.note] if choice.note else []
        ident = model_id(choice)
        if choice.embedded:
            if kind == "restorer":
                from ..restore.enhancer import ENHANCER_ID, EnhancerSettings
                from .adapters import EnhancerAdapter

                settings = EnhancerSettings()
                notes.append("restoration by the embedded classical enhancer (edge-aware denoise and detail "
                             "enhancement, no neural model)")
                return Loaded(choice, EnhancerAdapter(settings, f"{ENHANCER_ID}:{settings.key()}"),
                              f"{ENHANCER_ID}:{settings.key()}", tuple(notes))
            return Loaded(choice, None, ident, tuple(notes))
        assert path is not None
        fmt = record.format if record.format in ("onnx", "pth") else ("pth" if path.suffix in (".pth", ".pt") else "onnx")
        if fmt == "onnx" and precision != "fp32":
            notes.append(f"{record.name}: ONNX files run at the precision they were saved in ({precision} applies "
                         "to PyTorch models)")
        if kind == "swapper":
            from .adapters import InswapperAdapter
            from .onnx_embedder import ArcfaceEmbedder
            from .onnx_swapper import InswapperSwapper

            try:
                embedder: Loaded | None = self.load("embedder", record.requires[0] if record.requires else "",
                                                    allow_unverified)
            except ModelNotFound:
                embedder = None
            if embedder is None or embedder.adapter is None:
                if not allow_unverified:
                    raise ModelInvalid(f"{record.name} needs its source embedder arcface_w600k_r50.onnx in "
                                       f"{self.models_dir} (or --allow-unverified to run it without one)")
                notes.append(f"{record.name}: no arcface_w600k_r50 embedder, so its source vectors come from the "
                             "embedded dlib identity (unverified set-up: not a faithful swap)")
            else:
                notes.extend(embedder.notes)
            embedder_id = embedder.model_id if embedder is not None and embedder.adapter is not None else "dlib-stand-in"
            arcface = embedder.adapter if embedder is not None else None
            assert arcface is None or isinstance(arcface, ArcfaceEmbedder)  # what loading an embedder gives
            adapter = InswapperAdapter(InswapperSwapper(path, self.device), arcface, f"{ident}+{embedder_id}")
            warm_up(adapter.swapper.session)
            return Loaded(choice, adapter, adapter.model_id, tuple(notes))
        if kind == "embedder":
            from .onnx_embedder import ArcfaceEmbedder

            embedder_model = ArcfaceEmbedder(path, self.device)
            warm_up(embedder_model.session)
            return Loaded(choice, embedder_model, ident, tuple(notes))
        if kind == "restorer" and fmt == "onnx":
            from .adapters import OnnxRestorerAdapter
            from .onnx_restorer import OnnxRestorer

            size = record.size or _onnx_square_size(path)
            restorer = OnnxRestorer(path, self.device, size=size, template=record.template or _template_for(size))
            warm_up(restorer.session)
            return Loaded(choice, OnnxRestorerAdapter(restorer, ident), ident, tuple(notes))
        if kind == "restorer":
            from .adapters import TorchGpenAdapter
            from .gpen import load_gpen
            from .torch_runner import TorchImageModel

            module = load_gpen(path)
            size = int(module.config.size)
            runner = TorchImageModel(module, self.device, precision, allow_slow_cpu=self.slow_cpu_precision)
            runner.warm_up(size)
            if runner.note:
                notes.append(f"{record.name}: {runner.note}")
            ident = f"{ident}:{runner.precision}"  # the precision that runs: it decides the pixels
            return Loaded(choice, TorchGpenAdapter(runner, size, record.template or _template_for(size), ident),
                          ident, tuple(notes))
        if kind == "detector" and fmt == "onnx":
            from .onnx_detector import OnnxFaceDetector

            detector = OnnxFaceDetector(path, self.device, name=record.name)
            warm_up(detector.session)
            return Loaded(choice, detector, ident, tuple(notes))
        if kind == "landmarker" and fmt == "onnx":
            from .onnx_landmarker import OnnxLandmarker

            landmarker = OnnxLandmarker(path, self.device, name=record.name)
            warm_up(landmarker.session)
            return Loaded(choice, landmarker, ident, tuple(notes))
        if kind == "parser":
            from .adapters import ParserAdapter
            from .onnx_parser import BisenetParser

            parser = BisenetParser(path, self.device)
            warm_up(parser.session)
            return Loaded(choice, ParserAdapter(parser, ident), ident, tuple(notes))
        raise ModelInvalid(f"{path}: models of kind '{kind}' cannot be loaded from a file")

    def unload(self) -> None:
        """Drop every loaded model and free its memory (GPU memory included)."""
        with self._lock:
            loaded, self._loaded = list(self._loaded.values()), {}
        for item in loaded:
            runner = getattr(item.adapter, "runner", None)
            if runner is not None and hasattr(runner, "unload"):
                runner.unload()
        _LOG.info("unloaded %d model(s)", len(loaded))
