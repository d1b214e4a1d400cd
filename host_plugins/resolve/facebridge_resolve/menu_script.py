"""What Workspace > Scripts > FaceBridge runs (through the launcher ``facebridge install resolve`` writes).

Resolve runs menu scripts with ``resolve``, ``fusion`` and ``bmd`` among the script's globals; the
launcher passes its globals here. Without a ``resolve`` global the object comes from ``app.GetResolve()``,
``bmd.scriptapp("Resolve")`` or (external scripting, Studio only) ``DaVinciResolveScript.scriptapp("Resolve")``.

Settings: the dialog (prefilled with the last run's settings) when Resolve's UIManager is available;
otherwise the ``FACEBRIDGE_*`` environment variables of :func:`dialog.settings_from_env`. Every message
goes to the Console and, with a UI, to a small window.
"""

import os
from typing import Any, Callable, Dict, Mapping, Optional

from host_plugins.common.knobs import SettingsError

from . import dialog
from .job import JobOutcome, run_job, scripting_problem


def _scriptapp() -> Any:
    import DaVinciResolveScript as dvr_script   # external scripting (RRM "Using a script")
    return dvr_script.scriptapp("Resolve")


def find_resolve(script_globals: Mapping[str, Any]) -> Any:
    """The ``resolve`` object the ways a Scripts-menu script can get it, or None.

    In order: the ``resolve`` global; ``app.GetResolve()`` (``app`` is the Fusion object in the Scripts
    menu); ``bmd.scriptapp("Resolve")``; ``DaVinciResolveScript.scriptapp("Resolve")``.
    """
    if script_globals.get("resolve") is not None:
        return script_globals["resolve"]
    app, bmd = script_globals.get("app"), script_globals.get("bmd")
    ways = []  # type: list
    if app is not None:
        ways.append(lambda: app.GetResolve())
    if bmd is not None:
        ways.append(lambda: bmd.scriptapp("Resolve"))
    ways.append(_scriptapp)
    for way in ways:
        try:
            resolve = way()
        except Exception:   # an old or odd host: try the next way
            continue
        if resolve is not None:
            return resolve
    return None


def _ui(resolve: Any, script_globals: Mapping[str, Any]) -> Any:
    """``(ui, dispatcher)`` of Resolve's UIManager, or None when there is none.

    None outside the Scripts menu (no ``bmd``) and on the free edition from 19.1, whose
    ``fusion.UIManager`` is None: the messages then go to the Console only.
    """
    bmd = script_globals.get("bmd")
    if resolve is None or bmd is None:
        return None
    fusion = script_globals.get("fusion") or resolve.Fusion()
    ui = getattr(fusion, "UIManager", None) if fusion is not None else None
    if ui is None:
        return None
    return ui, bmd.UIDispatcher(ui)


def main(script_globals: Optional[Mapping[str, Any]] = None, env: Optional[Mapping[str, str]] = None,
         log: Callable[[str], None] = print) -> JobOutcome:
    """Run one facebridge job; returns its outcome (never raises for the artist's mistakes)."""
    script_globals = script_globals or {}
    env = os.environ if env is None else env
    resolve = find_resolve(script_globals)
    ui = _ui(resolve, script_globals)

    def tell(outcome: JobOutcome) -> JobOutcome:
        log("facebridge: %s" % outcome.message)
        if ui is not None:
            dialog.show_message(ui[0], ui[1], outcome.message)
        return outcome

    problem = scripting_problem(resolve)
    if problem:
        return tell(JobOutcome(False, problem, 2))
    settings: Optional[Dict[str, str]]
    if ui is None or env.get("FACEBRIDGE_PRESET"):
        settings = dialog.settings_from_env(env)
    else:
        settings = dialog.ask_settings(ui[0], ui[1], dialog.load_last())
        if settings is None:
            log("facebridge: cancelled")
            return JobOutcome(False, "cancelled", 2)
        dialog.save_last(settings)
    try:
        job = dialog.job_from_settings(settings)
    except SettingsError as exc:
        return tell(JobOutcome(False, str(exc), 2))
    return tell(run_job(resolve, job, log))
