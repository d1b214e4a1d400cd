"""The server's package structure, read from its source: the packages of ``inference_server`` import each
other without a cycle, in layers (none imports a package above it), and never the client or host code.

Every import counts: absolute and relative, at module level and inside functions (a lazy import is still
a dependency).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "inference_server"
TOP = "inference_server"

# lowest first; a package may import packages of lower layers only ("inference_server" is the package's
# own __init__, which holds the version)
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({TOP}),
    frozenset({"file_digests"}),
    frozenset({"paths", "provenance", "faces", "plates", "store", "restore"}),
    frozenset({"compositing"}),
    frozenset({"models", "swap", "temporal"}),
    frozenset({"pipeline"}),
    frozenset({"server"}),
)
FORBIDDEN = ("facebridge.client", "facebridge.cli", "ui", "host_plugins")


def _module_name(path: Path) -> tuple[str, bool]:
    """Dotted name of a source file and whether it is a package's ``__init__``."""
    parts = (TOP, *path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _imports(path: Path) -> Iterator[str]:
    """Dotted names ``path`` imports (for ``from x import y``: ``x`` and ``x.y``), relative ones resolved."""
    name, is_package = _module_name(path)
    package = name.split(".") if is_package else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _package(dotted: str) -> str | None:
    """The package of ``inference_server`` a dotted name belongs to (None outside it)."""
    parts = dotted.split(".")
    if parts[0] != TOP:
        return None
    return parts[1] if len(parts) > 1 else TOP


def _sources() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def package_graph() -> dict[str, set[str]]:
    """``{package: packages it imports}`` over ``inference_server``'s packages and top-level modules."""
    modules = {_module_name(p)[0] for p in _sources()}
    graph: dict[str, set[str]] = {}
    for path in _sources():
        source = _package(_module_name(path)[0])
        assert source is not None
        edges = graph.setdefault(source, set())
        for target in _imports(path):
            package = _package(target)
            # ``from . import x`` names a module or an attribute: only known modules and packages count
            if package is not None and package != source and (target in modules or target == TOP):
                edges.add(package)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """A cycle of ``graph`` as ``[a, b, ..., a]``, or ``[]`` when it is acyclic."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return []

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return []


def test_the_graph_reader_sees_relative_lazy_and_absolute_imports(tmp_path: Path) -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []
    graph = package_graph()
    # known edges of each kind: relative at module level, relative inside a function, absolute
    assert "compositing" in graph["swap"]                # swap/model.py: from ..compositing.masks import ...
    assert "models" in graph["pipeline"]                 # pipeline/face_render.py: a lazy import of onnx_parser
    assert {"faces", "plates"} <= graph["compositing"]


def test_server_packages_import_each_other_without_a_cycle() -> None:
    cycle = find_cycle(package_graph())
    assert not cycle, "import cycle between inference_server packages: " + " -> ".join(cycle)


def test_server_packages_import_only_lower_layers() -> None:
    layer = {package: index for index, names in enumerate(LAYERS) for package in names}
    graph = package_graph()
    unplaced = sorted(set(graph) - set(layer))
    assert not unplaced, f"packages missing from LAYERS: {unplaced}"
    upward = sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if layer[b] >= layer[a])
    assert not upward, f"imports of a package in the same or a higher layer: {upward}"


def test_server_never_imports_client_or_host_code() -> None:
    found = sorted(f"{path.relative_to(ROOT.parent)}: {name}" for path in _sources() for name in _imports(path)
                   if any(name == f or name.startswith(f + ".") for f in FORBIDDEN))
    assert not found, f"inference_server imports client or host code: {found}"


def test_a_server_on_the_embedded_models_starts_without_onnx_runtime() -> None:
    """The neural model modules load with the first neural model: importing the server (and so starting one on
    the embedded models) imports neither ONNX Runtime nor onnx (slow, and noisy where its telemetry cannot write)."""
    import subprocess
    import sys

    code = ("import sys, inference_server.server.app, inference_server.server.engine; "
            "print(sorted(m for m in ('onnxruntime', 'onnx') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_importing_the_server_does_not_import_scipy() -> None:
    """scipy.spatial (~0.3 s of a server's start, for one Delaunay triangulation in the swap's model stage) is
    imported where it is used, with the first swap: importing the server imports no scipy at all."""
    import subprocess
    import sys

    code = ("import sys, inference_server.server.app, inference_server.server.engine; "
            "print(sorted(m for m in sys.modules if m == 'scipy' or m.startswith('scipy.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_the_render_s_lazy_imports_are_warmed_once_on_a_background_thread() -> None:
    """What the server's start leaves out (scipy.spatial) is imported by ``WarmImports`` on a thread of its own,
    started once however often it is asked (the engine asks when a shot analysis begins), so the first frame
    does not import it itself; a module that cannot be imported is only logged."""
    import subprocess
    import sys

    code = ("import sys; from inference_server.server.warmup import WarmImports; "
            "w = WarmImports(); t = w.start(); assert w.start() is t and t.daemon; t.join(60); "
            "bad = WarmImports(('scipy.spatial', 'no_such_module_here')).start(); bad.join(60); "
            "print(t.name, 'scipy.spatial' in sys.modules, bad.is_alive())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["facebridge-warm-imports", "True", "False"], done.stdout + done.stderr
    assert "warm-up import of no_such_module_here failed" in done.stderr


def test_a_server_on_the_embedded_models_starts_without_torch_where_there_is_no_gpu(tmp_path: Path) -> None:
    """``--device auto`` on a machine without a GPU driver decides ``cpu`` without PyTorch (~2 s of the start),
    and nothing else a server's start does imports it."""
    import subprocess
    import sys

    from inference_server.server.device import gpu_driver_present

    if gpu_driver_present():
        pytest.skip("this machine has a GPU driver: --device auto asks PyTorch, as it should")
    code = ("import sys; from pathlib import Path; "
            "from inference_server.server.app import ServerConfig, start_server; "
            f"root = Path({str(tmp_path)!r}); "
            "running = start_server(ServerConfig(host='127.0.0.1', port=0, device='auto', token='t' * 32, "
            "cache_dir=root / 'cache', models_dir=root / 'no-models', audit_log=root / 'audit.jsonl')); "
            "print(running.service.device, sorted(m for m in ('torch', 'onnxruntime', 'onnx') if m in sys.modules)); "
            "running.stop(0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "cpu []", done.stdout + done.stderr

