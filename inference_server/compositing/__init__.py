"""Compositing: what every model's output goes through on its way into the plate.

A model stage (the classical swap, an aligned swapper or restorer) leaves a cached output: a
:class:`~.classical_output.SwapModelOutput` or a :class:`~.delta_output.DeltaOutput`. Compositing applies
the artist's :class:`~.controls.CompositeControls` to it in the plate's linear light: colour match
(:mod:`.colour`), the mask's edge from the mask toolkit (:mod:`.masks`: one signed distance, one ramp,
feather and erode), per-region weights (:mod:`.regions`), seam correction (:mod:`.edge`), grain
(:mod:`.grain`) and the paste (:mod:`.assembly`), per kind of output in :mod:`.classical` and :mod:`.delta`.

It depends only on ``faces`` (landmark geometry) and ``plates`` (colour curves); every model package
depends on it, never the other way round.
"""
