"""The JSON run report: per-frame results and totals."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from facebridge.files import write_atomic

from .jobs import FrameOutcome


def frame_entry(outcome: FrameOutcome) -> dict[str, object]:
    return {
        "frame": outcome.frame_number,
        "input": outcome.input_path,
        "output": outcome.output_path,
        "status": outcome.status,
        "kind": outcome.kind,
        "message": outcome.message,
        "faces_found": len(outcome.faces),
        "faces_swapped": sum(bool(f["swapped"]) for f in outcome.faces),
        "faces_skipped": sum(bool(f.get("skipped")) for f in outcome.faces),
        "faces": outcome.faces,
        "timings_ms": outcome.timings_ms,
    }


def totals(outcomes: Sequence[FrameOutcome], elapsed_s: float) -> dict[str, object]:
    distances = [d for o in outcomes for f in o.faces
                 if f["swapped"] and isinstance(d := f["identity_distance"], float)]
    stages: dict[str, list[float]] = {}
    for outcome in outcomes:
        for stage, ms in outcome.timings_ms.items():
            stages.setdefault(stage, []).append(ms)
    return {
        "frames": len(outcomes),
        "ok": sum(o.status == "ok" for o in outcomes),
        "warnings": sum(o.status == "warning" for o in outcomes),
        "failed": sum(o.failed for o in outcomes),
        "faces_found": sum(len(o.faces) for o in outcomes),
        "faces_swapped": sum(bool(f["swapped"]) for o in outcomes for f in o.faces),
        "faces_skipped": sum(bool(f.get("skipped")) for o in outcomes for f in o.faces),
        "mean_identity_distance": round(sum(distances) / len(distances), 4) if distances else None,
        "elapsed_s": round(elapsed_s, 3),
        "frames_per_s": round(len(outcomes) / elapsed_s, 3) if elapsed_s > 0 else None,
        "mean_timings_ms": {k: round(sum(v) / len(v), 2) for k, v in stages.items()},
    }


def build_report(
    outcomes: Sequence[FrameOutcome], elapsed_s: float, run: Mapping[str, object]
) -> dict[str, object]:
    ordered = sorted(outcomes, key=lambda o: o.frame_number)
    return {**run, "frames": [frame_entry(o) for o in ordered], "totals": totals(ordered, elapsed_s)}


def write_report(path: str | os.PathLike[str], report: Mapping[str, object]) -> None:
    write_atomic(Path(path), (json.dumps(report, indent=2, allow_nan=False, default=str) + "\n").encode("utf-8"))
