"""What Workspace > Scripts > FaceBridge runs (through the launcher ``facebridge install resolve`` writes).

Resolve runs menu scripts with ``resolve``, ``fusion`` and ``bmd`` among the script's globals; the
launcher passes its globals here. Outside Resolve (external scripting, Studio only) the ``resolve``
object comes from ``DaVinciResolveScript.scriptapp("Resolve")`` as the README describes.

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
    try:
        import DaVinciResolveScript as dvr_script
    except ImportError:
        return None
    return dvr_script.scriptapp("Resolve")


def _ui(resolve: Any, script_globals: Mapping[str, Any]) -> Any:
    """``(ui, dispatcher)`` of Resolve's UIManager, or None when there is none (external scripting)."""
    bmd = script_globals.get("bmd")
    if resolve is None or bmd is None:
        return None
    fusion = script_globals.get("fusion") or resolve.Fusion()
    if fusion is None:
        return None
    ui = fusion.UIManager
    return ui, bmd.UIDispatcher(ui)


def main(script_globals: Optional[Mapping[str, Any]] = None, env: Optional[Mapping[str, str]] = None,
         log: Callable[[str], None] = print) -> JobOutcome:
    """Run one facebridge job; returns its outcome (never raises for the artist's mistakes)."""
    script_globals = script_globals or {}
    env = os.environ if env is None else env
    resolve = script_globals.get("resolve") or _scriptapp()
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
