"""The server's loaded models: chosen from the registry, loaded once, warmed up, shared by all sessions.

:class:`ModelPool` resolves a session's choices (``swapper``, ``restorer``, ``parser``, ``detector``,
``landmarker``: registry names or file paths, empty for the default) against the models directory, refuses
files that do not verify unless ``allow_unverified``, and hands out loaded adapters (:mod:`.adapters`), each
loaded by the module of its record's family (:mod:`.families`). Loaded
models are keyed by file, digest, device and precision, so two sessions asking for the same model share one
instance.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import replace
from pathlib import Path

from .errors import ModelInvalid, ModelRefused
from .families import family_loader
from .loading import LoadContext, Loaded, file_format, model_id, warm_up
from .registry import (
    ALLOW_UNVERIFIED_FLAG,
    Choice,
    DigestMemo,
    ModelRecord,
    ModelStatus,
    choose,
    load_records,
    scan,
)

__all__ = ["PRECISIONS", "Loaded", "ModelPool", "model_id", "warm_up"]

_LOG = logging.getLogger(__name__)
PRECISIONS = ("fp32", "fp16", "bf16")


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
        """Load ``choice`` with its record's family module (:mod:`.families`)."""
        record = choice.record
        if record.kind != kind:
            raise ModelInvalid(f"{record.name} is a {record.kind}, not a {kind}")
        notes = [choice.note] if choice.note else []
        if not choice.embedded and file_format(choice) == "onnx" and precision != "fp32":
            notes.append(f"{record.name}: ONNX files run at the precision they were saved in ({precision} applies "
                         "to PyTorch models)")
        ctx = LoadContext(self.device, self.models_dir, self.slow_cpu_precision, allow_unverified, self.load)
        loaded = family_loader(record.family)(ctx, choice, precision)
        return replace(loaded, notes=(*notes, *loaded.notes))

    def unload(self) -> None:
        """Drop every loaded model and free its memory (GPU memory included)."""
        with self._lock:
            loaded, self._loaded = list(self._loaded.values()), {}
        for item in loaded:
            runner = getattr(item.adapter, "runner", None)
            if runner is not None and hasattr(runner, "unload"):
                runner.unload()
        _LOG.info("unloaded %d model(s)", len(loaded))
