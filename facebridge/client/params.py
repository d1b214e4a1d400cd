"""The render settings on the client side: presets as ``RenderParams``, and their wire form.

The preset file format is ``facebridge.presets`` (shared with the host plugins and the panel).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from facebridge import schema
from facebridge.presets import preset_document as settings_document
from facebridge.presets import preset_values, read_preset, write_preset
from facebridge.settings import RenderParams
from facebridge_wire.v1 import facebridge_pb2 as pb


def from_dict(data: dict[str, Any], origin: str = "preset") -> RenderParams:
    """RenderParams from a preset document's fields (its own keys skipped)."""
    return RenderParams(**preset_values(data, origin))


def load_preset(path: str | os.PathLike[str]) -> RenderParams:
    """RenderParams from a preset file (SettingError naming the file otherwise)."""
    return RenderParams(**read_preset(os.fspath(path))[0])


def preset_document(params: RenderParams, name: str = "") -> dict[str, Any]:
    """``params`` in the preset format (every setting)."""
    return settings_document(params.settings(), name)


def save_preset(path: str | Path, params: RenderParams, name: str = "") -> None:
    write_preset(os.fspath(path), params.settings(), name)


def to_proto(params: RenderParams, output_format: str, face_reference: pb.SourceImage | None = None,
             skip_quality_checks: bool = False) -> pb.ProcessParams:
    """The wire message for ``params`` (every setting set explicitly, so the server's defaults never decide)."""
    return pb.ProcessParams(output_format=output_format, face_reference=face_reference,
                            skip_quality_checks=skip_quality_checks,
                            **schema.message_fields(params.validated().settings()))
