"""Provenance: the parameters hash and the metadata every output frame carries."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from . import __version__

METADATA_PREFIX = "facebridge:"


def sha256_hex(data: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def params_hash(params: Mapping[str, object], source_hashes: Sequence[str], model_ids: Sequence[str]) -> str:
    """Stable short hash of everything that decides a render's pixels (params, sources, models).

    Key order and float formatting do not matter: the JSON is canonical (sorted keys, no whitespace).
    """
    payload = {"params": dict(params), "sources": list(source_hashes), "models": list(model_ids)}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def output_metadata(
    mode: str, model_ids: Sequence[str], params_digest: str, source_hashes: Sequence[str]
) -> dict[str, str | int]:
    """Header attributes stating that the frame was AI-processed, by what and with which parameters.

    All keys carry the ``facebridge:`` prefix, so the plate's own metadata (Software, ImageDescription,
    camera data) is kept as it was.
    """
    models = ",".join(model_ids)
    return {
        f"{METADATA_PREFIX}ai_processed": 1,
        f"{METADATA_PREFIX}version": __version__,
        f"{METADATA_PREFIX}mode": mode,
        f"{METADATA_PREFIX}models": models,
        f"{METADATA_PREFIX}params_hash": params_digest,
        f"{METADATA_PREFIX}sources_sha256": ",".join(source_hashes),
        f"{METADATA_PREFIX}note": f"AI-processed by facebridge {__version__}: face {mode} ({models}), params {params_digest}",
    }
