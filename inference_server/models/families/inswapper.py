"""inswapper_128 (and its fp16 file): 128 px arcface_128 target, source = arcface_w600k_r50 embedding
through the file's emap (:mod:`..onnx_swapper`). The embedder is the record's ``requires[0]``."""

from __future__ import annotations

from ..errors import ModelInvalid, ModelNotFound
from ..loading import LoadContext, Loaded, loaded_path, model_id, warm_up
from ..registry import Choice


def load_embedder(ctx: LoadContext, choice: Choice, notes: list[str]) -> tuple[object | None, str]:
    """The swapper's source embedder (its record's ``requires[0]``) and its id; without one (missing file)
    only under ``--allow-unverified``, with a note, as ``(None, "dlib-stand-in")``.

    Raises:
        ModelInvalid: no embedder and no consent to an unverified set-up.
    """
    record = choice.record
    try:
        embedder: Loaded | None = ctx.load_model("embedder", record.requires[0] if record.requires else "",
                                                 ctx.allow_unverified)
    except ModelNotFound:
        embedder = None
    if embedder is None or embedder.adapter is None:
        wanted = record.requires[0] if record.requires else "arcface_w600k_r50"
        if not ctx.allow_unverified:
            raise ModelInvalid(f"{record.name} needs its source embedder {wanted}.onnx in "
                               f"{ctx.models_dir} (or --allow-unverified to run it without one)")
        notes.append(f"{record.name}: no {wanted} embedder, so its source vectors come from the "
                     "embedded dlib identity (unverified set-up: not a faithful swap)")
        return None, "dlib-stand-in"
    notes.extend(embedder.notes)
    return embedder.adapter, embedder.model_id


def load(ctx: LoadContext, choice: Choice, precision: str) -> Loaded:
    from ..adapters import InswapperAdapter
    from ..onnx_embedder import ArcfaceEmbedder
    from ..onnx_swapper import InswapperSwapper

    notes: list[str] = []
    arcface, embedder_id = load_embedder(ctx, choice, notes)
    assert arcface is None or isinstance(arcface, ArcfaceEmbedder)  # what loading an embedder gives
    adapter = InswapperAdapter(InswapperSwapper(loaded_path(choice), ctx.device), arcface,
                               f"{model_id(choice)}+{embedder_id}")
    warm_up(adapter.swapper.session)
    return Loaded(choice, adapter, adapter.model_id, tuple(notes))
