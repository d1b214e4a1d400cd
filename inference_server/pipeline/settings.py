"""The settings of a render besides pixels, faces and sources: colour space, model stage, compositing
controls, working size, temporal stabilisation."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ..compositing.controls import CompositeControls
from ..plates.colour import ColourSpace
from ..swap import ALGORITHM_ID, SwapParams
from .stages import AlignedSwapStage, ClassicalSwapStage, Stage


@dataclass(frozen=True)
class RenderSettings:
    """Everything besides pixels, faces and sources that decides a frame's result."""

    colourspace: ColourSpace = field(default_factory=ColourSpace)
    swap: SwapParams = field(default_factory=SwapParams)
    controls: CompositeControls = field(default_factory=CompositeControls)
    crop_margin: float = 0.6
    max_working_side: int = 1024
    quality_checks: bool = True
    stabilise: float = 0.0        # weight of each flow-warped neighbour face (0 = off)
    flow_threshold: float = 0.04  # largest grey difference (0..1) at which the flow is still trusted
    stage: Stage | None = None    # the model stage; None = the embedded classical swap with ``swap``
    min_face: float = 0.0         # px; smaller faces of a swap are skipped unless picked (0 = none; .small_faces)

    @property
    def model_stage(self) -> Stage:
        return self.stage if self.stage is not None else ClassicalSwapStage(self.swap, ALGORITHM_ID)

    def model_key_material(self) -> str:
        """The settings that change model output (not the compositing controls); an aligned swap's own
        settings (its paste-back) only for an aligned swap, so other stages keep their keys."""
        stage = self.model_stage
        material = {"colourspace": self.colourspace.name, "swap": asdict(self.swap), "stage": list(stage.model_ids),
                    "crop_margin": self.crop_margin, "max_working_side": self.max_working_side}
        if isinstance(stage, AlignedSwapStage):
            material["aligned"] = stage.key_settings
        return json.dumps(material, sort_keys=True, default=str)
