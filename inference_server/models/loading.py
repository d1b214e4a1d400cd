"""What a model family's loader receives and returns (:mod:`.families`), and helpers they share.

:class:`LoadContext` is the pool's side of one load (device, precision policy, the session's consent to
unverified files, and a way to load a model this one needs); :class:`Loaded` is the result the pool keeps
and hands to sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .errors import ModelInvalid
from .registry import Choice

if TYPE_CHECKING:  # (onnxruntime is imported when a model is loaded)
    import onnxruntime as ort


@dataclass(frozen=True)
class Loaded:
    """A chosen model, loaded: ``adapter`` is None for the embedded defaults that need no object
    (the classical swap, landmark region masks, dlib's models)."""

    choice: Choice
    adapter: object | None
    model_id: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadContext:
    """The pool's side of one load.

    Attributes:
        device: the server's resolved device (``cpu``, ``cuda:N``, ``mps``).
        models_dir: the server's models directory (for messages).
        slow_cpu_precision: run fp16/bf16 PyTorch models on a CPU without native support for them.
        allow_unverified: the session's consent to unverified files (already checked against the server's).
        load_model: ``(kind, name, allow_unverified) -> Loaded``: loads (or shares) another model, e.g. a
            swapper's embedder named in its record's ``requires``.
    """

    device: str
    models_dir: Path
    slow_cpu_precision: bool
    allow_unverified: bool
    load_model: Callable[[str, str, bool], Loaded]


class FamilyLoader(Protocol):
    """The one function a family module exposes as ``load``."""

    def __call__(self, ctx: LoadContext, choice: Choice, precision: str) -> Loaded: ...


def model_id(choice: Choice) -> str:
    """``name@sha256[:16]`` of a file model, the record name of an embedded one."""
    if choice.embedded or not choice.digest:
        return choice.record.name
    return f"{choice.record.name}@{choice.digest[:16]}"


def file_format(choice: Choice) -> str:
    """``onnx`` or ``pth``: the record's format, else the file's suffix (a stand-in record)."""
    record, path = choice.record, choice.path
    if record.format in ("onnx", "pth"):
        return record.format
    return "pth" if path is not None and path.suffix in (".pth", ".pt") else "onnx"


def loaded_path(choice: Choice) -> Path:
    """The file of a file model (a family of file models is never handed an embedded choice)."""
    if choice.path is None:
        raise ModelInvalid(f"{choice.record.name}: no file to load")
    return choice.path


def template_for(size: int) -> str:
    """The alignment template of a restorer without one in its record: arcface_128 up to 256 px, else ffhq_512."""
    return "arcface_128" if size <= 256 else "ffhq_512"


def onnx_square_size(path: Path) -> int:
    """The side of an ONNX file's first (NCHW, square) input."""
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
