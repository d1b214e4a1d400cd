"""Screenshots of every view mode of the artist panel on the demo shot, for documentation and review.

Builds the demo shot as ``facebridge demo`` does (24 frames of scikit-image's astronaut, Grace Hopper as
the source, analysed and rendered by a private server whose cache lands in OUT/cache), then renders the
panel offscreen in one state per view and writes OUT/panel_<view>.png:

    a, b                 set A (the demo's parameters) and set B (blend 0.7, mouth off, eyes at half, grain)
    wipe, side           A against B, divider at 45 %
    difference           |A - B| x 8 through the sRGB view
    wipe_vs_plate        A against the untouched plate
    overlays             set A with landmarks, region masks and track ids
    zoom_100             side by side at one screen pixel per plate pixel
    frame                the whole frame instead of the faces' region

Usage: python tools/panel_screenshots.py OUT [--frames 24] [--frame 1012]
       python tools/panel_screenshots.py OUT --demo DIR --cache-dir DIR   (reuse a built demo)
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported at run time once the environment is set (main)
    from ui.panel.state import PanelState

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

B_SET: dict[str, Any] = {"blend": 0.7, "regions": {"mouth": 0.0, "eyes": 0.5}, "grain": 0.3}


def build_demo(out: Path, frames: int) -> tuple[Path, Path]:
    """``facebridge demo`` into ``out/demo`` with its private server's cache in ``out/cache``."""
    os.environ["XDG_CACHE_HOME"] = str(out / "cache")  # the demo's private server inherits it
    from facebridge.client.demo import run as run_demo

    code = run_demo(argparse.Namespace(out=out / "demo", frames=frames, progress="none"))
    if code != 0:
        raise SystemExit(f"facebridge demo failed with exit code {code}")
    return out / "demo", out / "cache" / "facebridge"


def states(base: PanelState) -> dict[str, PanelState]:
    s = base
    return {
        "a": replace(s, view="a"),
        "b": replace(s, view="b"),
        "wipe": replace(s, view="wipe", wipe=0.45),
        "side": replace(s, view="side"),
        "difference": replace(s, view="difference", gain=8.0),
        "wipe_vs_plate": replace(s, view="wipe", compare="plate", wipe=0.45),
        "overlays": replace(s, view="a", overlays=replace(s.overlays, landmarks=True, regions=True, tracks=True)),
        "zoom_100": replace(s, view="side", zoom=-1.0),  # -1: set after the previews arrive (100 %)
        "frame": replace(s, view="wipe", region="frame", wipe=0.45),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the PNGs (and the demo, unless --demo)")
    parser.add_argument("--frames", type=int, default=24, help="frames of the demo shot (default 24)")
    parser.add_argument("--frame", type=int, help="frame to show (default: the middle of the shot)")
    parser.add_argument("--demo", type=Path, help="an existing `facebridge demo --out` folder")
    parser.add_argument("--cache-dir", type=Path, help="the cache dir of the server that built --demo")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.demo:
        demo, cache = args.demo.resolve(), (args.cache_dir or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache"))
                                            .expanduser() / "facebridge")
        frames = len(list((demo / "plate").glob("plate.*.exr")))
    else:
        demo, cache = build_demo(out, args.frames)
        frames = args.frames
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from facebridge.auth import PLAIN
    from facebridge.client.demo import grace_hopper_path
    from facebridge.client.grpc_client import FaceBridgeClient
    from facebridge.client.local_server import LocalServer
    from facebridge.settings import RenderParams
    from ui.panel.app import PanelWindow, application, screenshot
    from ui.panel.state import PanelState

    application(offscreen=True)
    base = PanelState(shot="demo", input=str(demo / "plate" / "plate.####.exr"), sources=(str(grace_hopper_path()),),
                      frame=args.frame or 1000 + (frames + 1) // 2, a=RenderParams(),
                      b=RenderParams(**B_SET), name_a="A: demo", name_b="B: soft mouth", window=(1500, 940))
    written = []
    with LocalServer(device="cpu", cache_dir=cache) as server, \
            FaceBridgeClient(server.address, token=server.token, tls=PLAIN) as client:
        client.wait_ready(60.0)
        for name, state in states(replace(base, server=server.address)).items():
            full = state.zoom < 0
            window = PanelWindow(replace(state, zoom=0.0) if full else state, client=client)
            path = out / f"panel_{name}.png"
            window.show()
            ok = window.panel.wait_until_ready(args.timeout)
            if full:
                window.panel.zoom_100()
            ok = screenshot(window, window.panel, path, args.timeout) and ok
            for message in window.panel.errors:
                print(f"  {name}: {message}", file=sys.stderr)
            window.panel.shutdown()
            window.close()
            written.append(path)
            print(f"{path}{'' if ok else '  (previews incomplete)'}")
    print(f"{len(written)} screenshots of frame {base.frame} of the demo shot in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
