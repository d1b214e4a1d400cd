"""``facebridge install nuke|resolve``: put the host plugins where Nuke and Resolve find them.

Nuke: a marked block in the user's ``~/.nuke/init.py`` calls ``nuke.pluginAddPath`` on this
installation's ``host_plugins/nuke`` folder and records the ``facebridge`` command in
``FACEBRIDGE_CLI``. Nothing is copied, so upgrading facebridge upgrades the plugin; the block is
replaced on reinstall and removed by ``--uninstall`` (the rest of ``init.py`` is left alone).

Resolve: a launcher ``FaceBridge.py`` in Resolve's per-user ``Fusion/Scripts/Utility`` folder (listed
on every page under Workspace > Scripts), holding the plugin folder and the command.

Both are idempotent (an unchanged install reports "unchanged" and writes nothing) and ``--dry-run``
prints the plan without touching anything.
"""

import argparse
import difflib
import os
import re
import sys
from pathlib import Path
from typing import List, NamedTuple, Optional

HERE = Path(__file__).resolve().parent
NUKE_PLUGIN = HERE / "nuke"
RESOLVE_PLUGIN = HERE / "resolve"
BEGIN = "# >>> facebridge >>>"
END = "# <<< facebridge <<<"
_BLOCK = re.compile(r"\n?" + re.escape(BEGIN) + r".*?" + re.escape(END) + r"[^\n]*\n?", re.DOTALL)


class Change(NamedTuple):
    path: Path
    action: str            # create | update | remove | unchanged | absent
    content: Optional[str]  # the file's new text (None: delete the file)
    old: str


def default_cli() -> List[str]:
    """The command hosts run: this interpreter with ``-m facebridge`` (works wherever it is installed)."""
    return [sys.executable, "-m", "facebridge"]


def default_nuke_dir() -> Path:
    return Path.home() / ".nuke"


def default_resolve_scripts_dir(platform: str = sys.platform) -> Path:
    """Resolve's per-user ``Fusion/Scripts`` folder, as Blackmagic's scripting README gives it per OS."""
    if platform == "darwin":
        support = Path.home() / "Library" / "Application Support"
        return support / "Blackmagic Design" / "DaVinci Resolve" / "Fusion" / "Scripts"
    if platform.startswith("win"):
        appdata = os.environ.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
        return Path(appdata) / "Blackmagic Design" / "DaVinci Resolve" / "Support" / "Fusion" / "Scripts"
    return Path.home() / ".local" / "share" / "DaVinciResolve" / "Fusion" / "Scripts"


def nuke_block(plugin_dir: Path, cli: List[str]) -> str:
    from host_plugins.common.command import encode_cli

    return "\n".join([
        BEGIN + " (written by `facebridge install nuke`; `facebridge install nuke --uninstall` removes it)",
        "import os as _facebridge_os",
        "import nuke as _facebridge_nuke",
        "_facebridge_os.environ.setdefault(\"FACEBRIDGE_CLI\", %r)" % encode_cli(cli),
        "_facebridge_nuke.pluginAddPath(%r)" % str(plugin_dir),
        "del _facebridge_os, _facebridge_nuke",
        END,
    ]) + "\n"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def plan_nuke(nuke_dir: Path, cli: List[str], uninstall: bool, plugin_dir: Path = NUKE_PLUGIN) -> List[Change]:
    path = nuke_dir / "init.py"
    old = _read(path)
    without = _BLOCK.sub("\n", old) if BEGIN in old else old
    without = without.rstrip("\n") + "\n" if without.strip() else ""
    if uninstall:
        if BEGIN not in old:
            return [Change(path, "absent", old, old)]
        return [Change(path, "remove" if not without else "update", without or None, old)]
    new = (without + ("\n" if without else "") + nuke_block(plugin_dir, cli))
    if new == old:
        return [Change(path, "unchanged", new, old)]
    return [Change(path, "update" if path.exists() else "create", new, old)]


def resolve_launcher(plugin_dir: Path, cli: List[str]) -> str:
    from host_plugins.common.command import encode_cli

    text = (RESOLVE_PLUGIN / "FaceBridge.py").read_text(encoding="utf-8")
    text = re.sub(r'^PLUGIN_DIR = "".*$', lambda m: "PLUGIN_DIR = %r" % str(plugin_dir), text, count=1, flags=re.M)
    return re.sub(r'^CLI = "".*$', lambda m: "CLI = %r" % encode_cli(cli), text, count=1, flags=re.M)


def plan_resolve(scripts_dir: Path, cli: List[str], uninstall: bool,
                 plugin_dir: Path = RESOLVE_PLUGIN) -> List[Change]:
    path = scripts_dir / "Utility" / "FaceBridge.py"
    old = _read(path)
    if uninstall:
        return [Change(path, "remove" if path.exists() else "absent", None, old)]
    new = resolve_launcher(plugin_dir, cli)
    if new == old:
        return [Change(path, "unchanged", new, old)]
    return [Change(path, "update" if path.exists() else "create", new, old)]


def apply(change: Change) -> None:
    if change.action in ("unchanged", "absent"):
        return
    if change.content is None:
        change.path.unlink()
        return
    change.path.parent.mkdir(parents=True, exist_ok=True)
    temp = change.path.with_name(change.path.name + ".facebridge-tmp")
    temp.write_text(change.content, encoding="utf-8")
    os.replace(temp, change.path)


def describe(change: Change, dry_run: bool) -> str:
    verbs = {"create": ("would create", "created"), "update": ("would update", "updated"),
             "remove": ("would remove", "removed"), "unchanged": ("unchanged", "unchanged"),
             "absent": ("nothing to remove in", "nothing to remove in")}
    return "%s %s" % (verbs[change.action][0 if dry_run else 1], change.path)


def add_install_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``install`` to the ``facebridge`` subcommands (its ``func`` is :func:`run_install`)."""
    parser = subparsers.add_parser("install", help="put the Nuke or Resolve plugin where the host finds it",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("host", choices=("nuke", "resolve"), help="which host")
    parser.add_argument("--dry-run", action="store_true", help="show what would change and change nothing")
    parser.add_argument("--uninstall", action="store_true", help="remove what install added")
    parser.add_argument("--nuke-dir", type=Path, default=None,
                        help="the user's Nuke folder holding init.py (default ~/.nuke)")
    parser.add_argument("--resolve-scripts-dir", type=Path, default=None,
                        help="Resolve's per-user Fusion/Scripts folder (default: the per-OS folder of "
                             "Blackmagic's scripting README)")
    parser.add_argument("--cli", default=None, metavar="JSON",
                        help="the facebridge command hosts run, as a JSON array (default: this Python, "
                             "[\"%s\", \"-m\", \"facebridge\"])" % sys.executable.replace("%", "%%"))
    parser.set_defaults(func=run_install)


def run_install(args: argparse.Namespace) -> int:
    """Install, reinstall or uninstall one host's plugin; 0 on success, 2 on a bad argument or I/O error."""
    import json

    try:
        cli = json.loads(args.cli) if args.cli else default_cli()
        if not isinstance(cli, list) or not cli or not all(isinstance(a, str) and a for a in cli):
            raise ValueError("expected a non-empty JSON array of strings")
    except ValueError as exc:
        print("facebridge: error: --cli: %s" % exc, file=sys.stderr)
        return 2
    if args.host == "nuke":
        changes = plan_nuke(args.nuke_dir or default_nuke_dir(), cli, args.uninstall)
    else:
        changes = plan_resolve(args.resolve_scripts_dir or default_resolve_scripts_dir(), cli, args.uninstall)
    for change in changes:
        print("facebridge install %s: %s" % (args.host, describe(change, args.dry_run)))
        if args.dry_run and change.action in ("create", "update", "remove"):
            diff = difflib.unified_diff(change.old.splitlines(True), (change.content or "").splitlines(True),
                                        str(change.path), str(change.path))
            sys.stdout.writelines(diff)
            continue
        try:
            apply(change)
        except OSError as exc:
            print("facebridge: error: %s: %s" % (change.path, exc), file=sys.stderr)
            return 2
    if not args.dry_run and not args.uninstall:
        hint = {"nuke": "restart Nuke: Nodes > facebridge > FaceBridge",
                "resolve": "restart Resolve Studio: Workspace > Scripts > FaceBridge"}[args.host]
        print("facebridge install %s: %s" % (args.host, hint))
    return 0
