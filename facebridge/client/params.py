"""Render parameters shared by the CLI, presets, the panel and the host plugins.

A preset is a JSON object (``{"facebridge_preset": 1, ...}``) holding any of the fields of
``RenderParams``; the command line overrides it field by field. Host plugins and the panel read and
write the same format.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from facebridge_wire.v1 import facebridge_pb2 as pb

PRESET_VERSION = 1
REGION_NAMES = ("eyes", "brows", "nose", "mouth", "cheeks", "forehead", "jaw", "skin")
COLOUR_MATCH = ("none", "mean-std", "histogram")
MODES = ("swap", "restore", "swap+restore")
PRECISIONS = ("fp32", "fp16", "bf16")


class ParamsError(ValueError):
    """A preset or parameter that cannot be used; the message names it."""


@dataclass(frozen=True)
class RenderParams:
    """Everything an artist sets for a render (the knobs of a FaceBridge node)."""

    mode: str = "swap"
    blend: float = 1.0
    regions: dict[str, float] = field(default_factory=dict)
    feather: float = 0.0
    erode: float = 0.0
    grain: float = 0.0
    colour_match: str = "mean-std"
    smoothing: float = 2.0
    keyframe_interval: int = 8
    face: str = "all"
    colorspace: str = ""
    stabilise: float = 1.0
    flow_threshold: float = 0.04
    swapper: str = ""            # registry name or file path on the server; "" = best verified, else embedded
    restorer: str = ""
    parser: str = ""             # "none" = landmark region masks only
    allow_unverified: bool = False
    precision: str = "fp32"

    def validated(self) -> "RenderParams":
        if self.mode not in MODES:
            raise ParamsError(f"mode '{self.mode}' (expected {', '.join(MODES)})")
        if self.precision not in PRECISIONS:
            raise ParamsError(f"precision '{self.precision}' (expected {', '.join(PRECISIONS)})")
        if not (0.0 <= self.blend <= 1.0):
            raise ParamsError(f"blend must be within 0..1, got {self.blend}")
        for name, weight in self.regions.items():
            if name not in REGION_NAMES:
                raise ParamsError(f"unknown region '{name}' (regions: {', '.join(REGION_NAMES)})")
            if not (0.0 <= weight <= 1.0):
                raise ParamsError(f"region weight {name}={weight} must be within 0..1")
        if not (0.0 <= self.grain <= 1.0):
            raise ParamsError(f"grain must be within 0..1, got {self.grain}")
        if self.colour_match not in COLOUR_MATCH:
            raise ParamsError(f"colour match '{self.colour_match}' (expected {', '.join(COLOUR_MATCH)})")
        if not (math.isfinite(self.smoothing) and self.smoothing >= 0.0):
            raise ParamsError(f"smoothing must be >= 0 frames, got {self.smoothing}")
        if self.keyframe_interval < 1:
            raise ParamsError(f"keyframe interval must be >= 1, got {self.keyframe_interval}")
        return self

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def to_proto(self, output_format: str, face_reference: pb.SourceImage | None = None,
                 skip_quality_checks: bool = False) -> pb.ProcessParams:
        return pb.ProcessParams(
            mode=self.mode, blend=self.blend, colorspace=self.colorspace, output_format=output_format,
            regions=self.regions, feather=self.feather, erode=self.erode, grain=self.grain,
            colour_match=self.colour_match, smoothing=self.smoothing, keyframe_interval=self.keyframe_interval,
            face="ref" if self.face.startswith("ref:") else self.face, face_reference=face_reference,
            skip_quality_checks=skip_quality_checks, stabilise=self.stabilise, flow_threshold=self.flow_threshold,
            swapper=self.swapper, restorer=self.restorer, parser=self.parser, allow_unverified=self.allow_unverified,
            precision=self.precision,
        )


def parse_regions(text: str) -> dict[str, float]:
    """``"eyes=1,mouth=0.3"`` -> ``{"eyes": 1.0, "mouth": 0.3}``."""
    regions: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            regions[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ParamsError(f"--regions '{text}': cannot read '{part}' (expected name=weight)")
    return regions


def from_dict(data: dict[str, object], origin: str = "preset") -> RenderParams:
    known = {f.name for f in fields(RenderParams)}
    unknown = sorted(set(data) - known - {"facebridge_preset", "name"})
    if unknown:
        raise ParamsError(f"{origin}: unknown field(s) {', '.join(unknown)}")
    values = {k: v for k, v in data.items() if k in known}
    if "regions" in values:
        values["regions"] = {str(k): float(v) for k, v in dict(values["regions"]).items()}  # type: ignore[arg-type]
    try:
        return RenderParams(**values).validated()  # type: ignore[arg-type]
    except TypeError as exc:
        raise ParamsError(f"{origin}: {exc}") from exc


def load_preset(path: str | Path) -> RenderParams:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ParamsError(f"preset {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("facebridge_preset") != PRESET_VERSION:
        raise ParamsError(f"preset {path}: not a facebridge preset (version {PRESET_VERSION})")
    return from_dict(data, f"preset {path}")


def save_preset(path: str | Path, params: RenderParams, name: str = "") -> None:
    from .grpc_client import write_atomic

    data = {"facebridge_preset": PRESET_VERSION, **({"name": name} if name else {}), **params.as_dict()}
    write_atomic(Path(path), (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def with_overrides(base: RenderParams, overrides: dict[str, object]) -> RenderParams:
    """``base`` with the given fields replaced (None values are ignored); regions merge by name."""
    values = {k: v for k, v in overrides.items() if v is not None}
    if "regions" in values:
        values["regions"] = {**base.regions, **values["regions"]}  # type: ignore[dict-item]
    return replace(base, **values).validated()  # type: ignore[arg-type]
