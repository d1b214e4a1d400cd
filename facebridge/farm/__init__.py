"""``facebridge farm``: the shot as a farm job of our own command (DESIGN principle 10).

One **analyse** task writes the shot's analysis as a read-only file; **render** tasks, one per chunk of the
frame range, each run ``facebridge process --analysis FILE`` on a private server with the machine's own
cache, and exit 0/1/2 as ``process`` does, each with its own report.

- ``job``: the scheduler-neutral description (frames, chunks, the analyse and render command lines), pure.
- ``openjd``: an Open Job Description job bundle (runs with ``openjd run``, submits with ``deadline``).
- ``opencue``: an OpenCue job built with pyoutline (its spec XML, or submitted to Cuebot).
- ``command``: the ``facebridge farm`` subcommand (its parser loads neither openjd nor pyoutline).

The schedulers' packages are the ``[farm]`` extra.
"""

EXTRA_HINT = "pip install 'facebridge[farm]'"


class FarmError(RuntimeError):
    """A farm job that cannot be described, written or submitted; the message says why (exit 2)."""


class MissingExtra(FarmError):
    """A scheduler's package is not installed; the message names the extra to install."""


__all__ = ["EXTRA_HINT", "FarmError", "MissingExtra"]
