"""The ``facebridge`` command: ``serve``, ``analyse``, ``process``, ``farm``, ``models``, ``export-onnx``,
``install``, ``panel`` and ``demo``.

Each subcommand's module is imported only when it runs, so ``facebridge process`` never loads the
server's models and ``facebridge serve`` never loads the client.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import __version__


def _serve(args: argparse.Namespace) -> int:
    from inference_server.server.app import ServerConfig, serve
    from inference_server.server.errors import FaceBridgeError

    try:
        return serve(ServerConfig(host=args.host, port=args.port, device=args.device, audit_log=args.audit_log,
                                  cache_dir=args.cache_dir, models_dir=args.models_dir,
                                  tls_cert=args.tls_cert, tls_key=args.tls_key, tls_client_ca=args.tls_client_ca,
                                  insecure=args.insecure, allow_roots=tuple(args.allow_root),
                                  allow_unverified=args.allow_unverified, memory_budget=args.memory_budget,
                                  max_sessions=args.max_sessions, session_idle_s=args.session_idle,
                                  max_sessions_per_peer=args.max_sessions_per_peer, max_streams=args.max_streams,
                                  stream_idle_s=args.stream_idle))
    except (FaceBridgeError, OSError) as exc:
        print(f"facebridge: error: {exc}", file=sys.stderr)
        return 2


def _bytes(text: str) -> int:
    """``"2G"``, ``"512M"``, ``"1073741824"`` -> bytes."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    text = text.strip().upper().removesuffix("B")
    try:
        return int(float(text[:-1]) * units[text[-1]]) if text and text[-1] in units else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 2G, 512M)") from None


def _process(args: argparse.Namespace) -> int:
    from .client.process_cmd import run

    return run(args)


def _analyse(args: argparse.Namespace) -> int:
    from .client.process_cmd import run_analyse

    return run_analyse(args)


def _models(args: argparse.Namespace) -> int:
    """List the registry's models, the files found and their verification state."""
    import os

    from inference_server.models.errors import ModelError
    from inference_server.models.listing import format_models
    from inference_server.models.registry import DigestMemo, load_records, resolve_models_dir, scan
    from inference_server.paths import default_cache_dir

    try:
        directory = resolve_models_dir(str(args.models_dir) if args.models_dir else None, os.environ)
        statuses = scan(directory, load_records(), DigestMemo(args.cache_dir or default_cache_dir()))
    except ModelError as exc:
        print(f"facebridge: error: {exc}", file=sys.stderr)
        return 2
    print(f"models folder: {directory}")
    print(format_models(statuses))
    return 0


def _export_onnx(args: argparse.Namespace) -> int:
    """Write a GPEN checkpoint as an ONNX file in the FaceFusion format (input ``input``)."""
    from inference_server.models.errors import ModelError
    from inference_server.models.gpen_export import export_from_checkpoint

    try:
        written = export_from_checkpoint(args.checkpoint, args.output, opset=args.opset)
    except (ModelError, ValueError, OSError) as exc:
        print(f"facebridge: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {written}")
    return 0


def _panel(args: argparse.Namespace) -> int:
    from ui.panel.cli import run

    return run(args)


def _demo(args: argparse.Namespace) -> int:
    from .client.demo import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facebridge", description="Face swap on linear EXR plates via a local gRPC server.")
    parser.add_argument("--version", action="version", version=f"facebridge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more to stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the inference server")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    serve.add_argument("--port", type=int, default=50051, help="port; 0 picks a free one (the bound address is printed)")
    serve.add_argument("--device", default="auto", help="auto|cpu|cuda[:N]|mps")
    serve.add_argument("--audit-log", type=Path, default=None,
                       help="JSON-lines audit log (default CACHE_DIR/audit.jsonl)")
    serve.add_argument("--cache-dir", type=Path, default=None,
                       help="shot database and model-output cache (default $XDG_CACHE_HOME/facebridge, "
                            "else ~/.cache/facebridge)")
    serve.add_argument("--models-dir", type=Path, default=None,
                       help="model files (default $FACEBRIDGE_MODELS_DIR, the config file's models_dir, "
                            "else ~/.local/share/facebridge/models)")
    shared = serve.add_argument_group("sharing the server (token from $FACEBRIDGE_TOKEN, else "
                                      "$XDG_CONFIG_HOME/facebridge/token, created 0600 at the first start)")
    shared.add_argument("--tls-cert", type=Path, metavar="PEM", help="serve TLS with this certificate chain")
    shared.add_argument("--tls-key", type=Path, metavar="PEM", help="the certificate's private key")
    shared.add_argument("--tls-client-ca", type=Path, metavar="PEM",
                        help="require client certificates signed by this CA (mutual TLS)")
    shared.add_argument("--insecure", action="store_true",
                        help="allow a non-loopback address without TLS (refused otherwise)")
    shared.add_argument("--allow-root", action="append", default=[], type=Path, metavar="DIR",
                        help="the path transport reads and writes only regular files under DIR (repeat for "
                             "several); without one, clients must stream their frames")
    shared.add_argument("--allow-unverified", action="store_true",
                        help="clients may ask for model files whose sha256 differs from the registry's")
    shared.add_argument("--memory-budget", type=_bytes, default=1024**3, metavar="SIZE",
                        help="memory for the in-memory caches together, e.g. 2G (default 1G): 40%% decoded model "
                             "outputs, 45%% render memos, 15%% preview plates")
    shared.add_argument("--max-sessions", type=int, default=64, metavar="N", help="open sessions at once")
    shared.add_argument("--max-sessions-per-peer", type=int, default=16, metavar="N",
                        help="open sessions per client address (default 16)")
    shared.add_argument("--session-idle", type=float, default=3600.0, metavar="S",
                        help="seconds after which an unused session is closed (default 3600)")
    shared.add_argument("--max-streams", type=int, default=6, metavar="N",
                        help="frame streams at once; more are refused, and unary calls and health keep their own "
                             "threads (default 6)")
    shared.add_argument("--stream-idle", type=float, default=120.0, metavar="S",
                        help="a stream whose client sends nothing this long is ended (default 120)")
    serve.set_defaults(func=_serve)

    from .client.options import add_analyse_arguments, add_process_arguments

    analyse = commands.add_parser("analyse", help="analyse a shot: cuts, face tracks, landmarks (resumable)")
    add_analyse_arguments(analyse)
    analyse.set_defaults(func=_analyse)

    process = commands.add_parser("process", help="swap and/or restore faces in an image sequence through a server")
    add_process_arguments(process)
    process.set_defaults(func=_process)

    models = commands.add_parser("models", help="list known models, the files found and whether they verify")
    models.add_argument("--models-dir", type=Path, default=None, help="model files (default as for serve)")
    models.add_argument("--cache-dir", type=Path, default=None, help="where file digests are remembered")
    models.set_defaults(func=_models)

    export = commands.add_parser("export-onnx", help="write a GPEN .pth checkpoint as ONNX (FaceFusion input names)")
    export.add_argument("checkpoint", type=Path, help="GPEN state_dict (.pth)")
    export.add_argument("output", type=Path, help="the .onnx file to write")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    export.set_defaults(func=_export_onnx)

    from .farm.command import add_farm_parser

    add_farm_parser(commands)

    from host_plugins.install import add_install_parser
    from ui.panel.cli import add_panel_arguments

    add_install_parser(commands)

    panel = commands.add_parser("panel", help="artist panel: A/B parameter sets, previews re-composited from the cache")
    add_panel_arguments(panel)
    panel.set_defaults(func=_panel)

    demo = commands.add_parser("demo", help="build a demo plate from package photos and run the whole pipeline")
    demo.add_argument("--out", type=Path, default=Path("facebridge_demo"), help="output folder (default ./facebridge_demo)")
    demo.add_argument("--frames", type=int, default=24, help="number of frames (default 24)")
    demo.add_argument("--progress", choices=("auto", "bar", "json", "none"), default="auto")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
