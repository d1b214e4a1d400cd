"""``facebridge panel`` on the command line: its arguments and ``main`` (``python -m ui.panel``).

Nothing here imports Qt, so ``facebridge/cli.py`` can add the subcommand's arguments without loading
PySide6; ``run`` imports the panel when the subcommand runs.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def add_panel_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``facebridge panel``."""
    parser.add_argument("--server", metavar="HOST:PORT", help="the server (default: the state's, else a private "
                        "local one on the default cache dir, where `facebridge analyse/process` leave their shots)")
    parser.add_argument("--shot", help="shot id in the server's shot database (default: the shot `facebridge "
                        "process/analyse/demo` analysed last, with its plates and sources)")
    parser.add_argument("--input", metavar="PATTERN", help="the shot's plate pattern, e.g. plate.####.exr (default: "
                        "where the client that analysed the shot read it)")
    parser.add_argument("--source", action="append", default=None, metavar="IMG",
                        help="source identity image (repeat for several)")
    parser.add_argument("--state", metavar="FILE.json", help="panel state to start from (see ui/panel/state.py)")
    parser.add_argument("--preset-a", metavar="FILE.json", help="parameter set A from a preset")
    parser.add_argument("--preset-b", metavar="FILE.json", help="parameter set B from a preset")
    parser.add_argument("--to-node", metavar="FILE.json", help="'Apply to node' writes the set being edited here, as "
                        "a preset file, for the host node that opened the panel to read back (Nuke's 'Get from panel')")
    parser.add_argument("--frame", type=int, help="frame to show first")
    parser.add_argument("--view", choices=("a", "b", "wipe", "side", "difference"), help="view mode")
    parser.add_argument("--screenshot", metavar="PATH.png", help="render the panel offscreen in the state, write "
                        "a PNG and exit (1 when the previews did not arrive within --timeout)")
    parser.add_argument("--save-state", metavar="FILE.json", help="write the panel's state on exit")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds --screenshot waits for previews")
    parser.add_argument("--device", default="auto", help="device of a private server")
    parser.add_argument("--cache-dir", type=Path, help="cache dir of a private server")
    parser.add_argument("--models-dir", type=Path, help="models dir of a private server")


def run(args: argparse.Namespace) -> int:
    """``facebridge panel`` (see ``app.run``)."""
    from .app import run as run_panel

    return run_panel(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facebridge panel", description="The facebridge artist panel: A/B "
                                     "parameter sets over an analysed shot, previews from the server's cache.")
    add_panel_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return run(args)
