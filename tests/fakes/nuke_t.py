"""``nuke -t SCRIPT.py ARGS...`` with the fake ``nuke`` module: a terminal-mode Nuke session for tests.

Like Nuke in terminal mode it runs ``init.py`` of every ``$NUKE_PATH`` folder (no ``menu.py``: there
is no GUI), strips a trailing frame-range argument from ``sys.argv`` (Nuke's documented behaviour),
then runs the script as ``__main__``.
"""

import os
import re
import runpy
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import nuke  # noqa: E402  (the fake)

_FRAME_RANGE = re.compile(r"^-?\d+([-,:]-?\d+)*$")


def main():
    if len(sys.argv) < 2:
        print("usage: nuke_t.py SCRIPT.py [ARGS...]", file=sys.stderr)
        return 2
    script, args = sys.argv[1], sys.argv[2:]
    if args and _FRAME_RANGE.match(args[-1]):
        print("WARNING: The command line argument '%s' will be used as a Frame Range argument and will not be "
              "forward to the python sys.argv." % args[-1], file=sys.stderr)
        args = args[:-1]
    nuke._fake.startup(os.environ.get("NUKE_PATH", "").split(os.pathsep), gui=False)
    sys.argv = [script] + args
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
