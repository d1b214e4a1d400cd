"""Shared loading of the aligned swapper families (:mod:`..swappers`): the record gives size, template and
normalisation, the family module gives the rest of FaceFusion's contract (output de-normalisation, source
kind); ``requires`` names the source embedder first and, for the ``converted`` kinds, the crossface
converter second."""

from __future__ import annotations

from ..errors import ModelInvalid, ModelNotFound
from ..loading import LoadContext, Loaded, loaded_path, model_id
from ..onnx_embedder import ArcfaceEmbedder
from ..registry import Choice
from ..swappers import (
    EmbeddingConverter,
    OnnxSwapperModel,
    SwapperAdapter,
    contract_for,
    warm_up_swapper,
)


def load_embedder(ctx: LoadContext, choice: Choice, notes: list[str]) -> tuple[ArcfaceEmbedder | None, str]:
    """The swapper's source embedder (its record's ``requires[0]``) and its id; without one (missing file)
    only under ``--allow-unverified``, with a note, as ``(None, "dlib-stand-in")``.

    Raises:
        ModelInvalid: no embedder and no consent to an unverified set-up.
    """
    record = choice.record
    wanted = record.requires[0] if record.requires else "arcface_w600k_r50"
    try:
        embedder: Loaded | None = ctx.load_model("embedder", record.requires[0] if record.requires else "",
                                                 ctx.allow_unverified)
    except ModelNotFound:
        embedder = None
    if embedder is None or embedder.adapter is None:
        if not ctx.allow_unverified:
            raise ModelInvalid(f"{record.name} needs its source embedder {wanted}.onnx in "
                               f"{ctx.models_dir} (or --allow-unverified to run it without one)")
        notes.append(f"{record.name}: no {wanted} embedder, so its source vectors come from the "
                     "embedded dlib identity (unverified set-up: not a faithful swap)")
        return None, "dlib-stand-in"
    assert isinstance(embedder.adapter, ArcfaceEmbedder)  # what loading an embedder gives
    notes.extend(embedder.notes)
    return embedder.adapter, embedder.model_id


def load_converter(ctx: LoadContext, choice: Choice, notes: list[str]) -> tuple[EmbeddingConverter, str]:
    """The crossface converter named second in the record's ``requires``.

    Raises:
        ModelInvalid: the record names none, or its file is missing (one line naming it).
    """
    record = choice.record
    if len(record.requires) < 2:
        raise ModelInvalid(f"{record.name}: its registry record names no embedding converter (requires[1])")
    name = record.requires[1]
    try:
        converter = ctx.load_model("converter", name, ctx.allow_unverified)
    except ModelNotFound as exc:
        raise ModelInvalid(f"{record.name} needs its embedding converter {name}.onnx in {ctx.models_dir} "
                           f"({str(exc).splitlines()[0]})") from exc
    assert isinstance(converter.adapter, EmbeddingConverter)
    notes.extend(converter.notes)
    return converter.adapter, converter.model_id


def load_swapper(ctx: LoadContext, choice: Choice, *, denormalise: bool, source: str,
                 source_template: str | None = None, source_size: int = 0) -> Loaded:
    """A :class:`~..swappers.SwapperAdapter` for ``choice`` with its embedder / converter as its source kind
    needs; its id is ``file[+embedder][+converter]``."""
    record = choice.record
    try:
        contract = contract_for(record.size, record.template, record.normalisation, denormalise=denormalise,
                                source=source, source_template=source_template, source_size=source_size,
                                name=record.name)
    except ValueError as exc:
        raise ModelInvalid(str(exc)) from None
    notes: list[str] = []
    ids = [model_id(choice)]
    embedder: ArcfaceEmbedder | None = None
    converter: EmbeddingConverter | None = None
    emap = None
    if source != "image":
        embedder, embedder_id = load_embedder(ctx, choice, notes)
        ids.append(embedder_id)
    if source in ("converted", "converted_norm"):
        converter, converter_id = load_converter(ctx, choice, notes)
        ids.append(converter_id)
    path = loaded_path(choice)
    if source == "emap":
        from ..onnx_swapper import read_emap

        emap = read_emap(path)
    model = OnnxSwapperModel(path, ctx.device, contract)
    warm_up_swapper(model)
    adapter = SwapperAdapter(model, embedder, converter, "+".join(ids), emap=emap)
    return Loaded(choice, adapter, adapter.model_id, tuple(notes))
