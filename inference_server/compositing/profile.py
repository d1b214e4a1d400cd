"""Handing a swapped face over to the plate as the head turns toward profile.

dlib's 68 landmarks (and so the swap's alignment) get unreliable on a head turned far from the camera, and
the swap's source photos are near frontal. Rather than let a swap fail suddenly (a pop), its strength
fades to the plate with the head's measured ``|yaw|``: exactly 1 up to :data:`FADE_START`, 0 from
:data:`FADE_END`, and a smoothstep between them (continuous, with a continuous slope), so a head turning
smoothly gives a smooth cross-fade. On an analysed shot the landmarks are smoothed over the track, so the
yaw measured from them, and the fade, change smoothly from frame to frame.

The angles are yaw as :func:`~inference_server.faces.pose.head_pose` measures it from dlib's landmarks,
which reads a turn low (the 68-point model hugs the frontal shape): on ../shared/data/faces every face the
detectors find measures at most 33 degrees (fr_short_hamilton_clip.mp4's turned singer, if_t1.jpg 32),
and a photo synthetically turned by 45 degrees measures about 26. The fade starts above all of those, so
every face seen so far keeps exactly its pixels.
"""

from __future__ import annotations

import numpy as np

FADE_START = 40.0
"""|yaw| in degrees up to which a swapped face keeps its full strength."""
FADE_END = 60.0
"""|yaw| in degrees from which the face is the plate."""


def profile_fade(yaw: float, start: float = FADE_START, end: float = FADE_END) -> float:
    """The strength ``[0, 1]`` a swapped face keeps at head yaw ``yaw`` (degrees, either sign).

    Exactly 1.0 for ``|yaw| <= start``, exactly 0.0 for ``|yaw| >= end``, a smoothstep in between (its
    steepest slope is ``1.5 / (end - start)`` per degree). A NaN yaw (no pose) keeps the face (1.0).
    """
    if not end > start:
        raise ValueError(f"profile fade: end {end} must be above start {start}")
    turn = abs(yaw)
    if not turn > start:  # also NaN
        return 1.0
    if turn >= end:
        return 0.0
    t = (turn - start) / (end - start)
    return float(1.0 - t * t * (3.0 - 2.0 * t))


def faded_mask(mask: np.ndarray, fade: float) -> np.ndarray:
    """``mask`` ``(h, w)`` float32 scaled by ``fade``; the very same array when ``fade`` is 1 (no change)."""
    if fade >= 1.0:
        return mask
    return (mask * np.float32(max(fade, 0.0))).astype(np.float32)
