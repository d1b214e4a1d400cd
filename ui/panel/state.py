"""The panel's state: what is connected, which frame, the two parameter sets and how they are shown.

It round-trips through JSON (``--state FILE.json``, screenshots for documentation and tests). The two
parameter sets are stored in the preset format (``{"facebridge_preset": 1, ...}``), so a state file's
``a``/``b`` entries can be saved as presets and presets can be pasted in.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from facebridge.client.params import from_dict, preset_document
from facebridge.schema import SettingError
from facebridge.settings import RenderParams

from .display import MODES

STATE_VERSION = 1
REGIONS = ("faces", "frame")
COMPARE = ("b", "plate")


class StateError(ValueError):
    """A state file that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Overlays:
    landmarks: bool = False
    regions: bool = False
    tracks: bool = True


@dataclass(frozen=True)
class PanelState:
    """Everything the panel shows; defaults are a fresh panel.

    Attributes:
        server: ``host:port``; empty = a private local server.
        shot: the shot id in the server's shot database.
        input: the shot's plate pattern (``plate.####.exr``): the shot database does not record inputs.
        sources: source identity images (the swap modes need at least one).
        frame: the frame shown (None = the first analysed frame).
        a, b: the two parameter sets; ``name_a``/``name_b`` their version names.
        editing: which set the sliders edit (``a`` | ``b``).
        view: ``a`` | ``b`` | ``wipe`` | ``side`` | ``difference``.
        compare: what the second image is: set ``b`` or the ``plate``.
        flipped: A and B swapped on screen (the flip key).
        wipe: divider position 0..1 (from the left).
        zoom: ``0`` = fit, else the scale of preview pixels (1 = 100 %); ``pan`` offsets in screen px.
        exposure: stops; ``gain``: amplification of the difference view.
        region: ``faces`` (the faces' region at up to ``max_side``) or the whole ``frame``.
        draft_drag: while a slider is dragged, previews leave out the temporal stabilisation (re-compositing
            the neighbours' faces) and the identity QC; the exact preview follows when the slider rests.
        window: width, height of the panel (screenshots).
    """

    server: str = ""
    shot: str = ""
    input: str = ""
    sources: tuple[str, ...] = ()
    frame: int | None = None
    a: RenderParams = field(default_factory=RenderParams)
    b: RenderParams = field(default_factory=RenderParams)
    name_a: str = "A"
    name_b: str = "B"
    editing: str = "a"
    view: str = "wipe"
    compare: str = "b"
    flipped: bool = False
    wipe: float = 0.5
    zoom: float = 0.0
    pan: tuple[float, float] = (0.0, 0.0)
    exposure: float = 0.0
    gain: float = 8.0
    overlays: Overlays = field(default_factory=Overlays)
    region: str = "faces"
    max_side: int = 1024
    draft_drag: bool = True
    loop: bool = True
    fps: float = 12.0
    window: tuple[int, int] = (1400, 900)

    def validated(self) -> "PanelState":
        if self.view not in MODES:
            raise StateError(f"view '{self.view}' (expected {', '.join(MODES)})")
        if self.editing not in ("a", "b"):
            raise StateError(f"editing '{self.editing}' (expected a or b)")
        if self.compare not in COMPARE:
            raise StateError(f"compare '{self.compare}' (expected {', '.join(COMPARE)})")
        if self.region not in REGIONS:
            raise StateError(f"region '{self.region}' (expected {', '.join(REGIONS)})")
        if not 0.0 <= self.wipe <= 1.0:
            raise StateError(f"wipe must be within 0..1, got {self.wipe}")
        if self.zoom < 0.0 or self.max_side < 16 or self.fps <= 0.0:
            raise StateError("zoom must be >= 0, max_side >= 16 and fps > 0")
        return self

    def params(self, which: str) -> RenderParams:
        return self.a if which == "a" else self.b

    def with_params(self, which: str, params: RenderParams) -> "PanelState":
        changes: dict[str, Any] = {which: params.validated()}  # field a or b, named at run time
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for which in ("a", "b"):
            data[which] = preset_document(self.params(which), getattr(self, f"name_{which}"))
        data["sources"] = list(self.sources)
        data["pan"] = list(self.pan)
        data["window"] = list(self.window)
        return {"facebridge_panel_state": STATE_VERSION, **data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "state") -> "PanelState":
        if data.get("facebridge_panel_state", STATE_VERSION) != STATE_VERSION:
            raise StateError(f"{origin}: not a facebridge panel state (version {STATE_VERSION})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"facebridge_panel_state"})
        if unknown:
            raise StateError(f"{origin}: unknown field(s) {', '.join(unknown)}")
        values = {k: v for k, v in data.items() if k in known}
        try:
            for which in ("a", "b"):
                if which in values:
                    values[which] = from_dict(dict(values[which]), f"{origin}: set {which}")
            if "overlays" in values:
                values["overlays"] = Overlays(**values["overlays"])
            for name in ("sources", "pan", "window"):
                if name in values:
                    values[name] = tuple(values[name])
            return cls(**values).validated()
        except (SettingError, TypeError) as exc:
            raise StateError(f"{origin}: {exc}") from exc

    @classmethod
    def load(cls, path: str | Path) -> "PanelState":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise StateError(f"state {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise StateError(f"state {path}: expected a JSON object")
        return cls.from_dict(data, f"state {path}")

    def save(self, path: str | Path) -> None:
        from facebridge.client.grpc_client import write_atomic

        write_atomic(Path(path), self.to_json().encode("utf-8"))
