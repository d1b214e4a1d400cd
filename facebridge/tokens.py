"""The frame token of a file pattern: ``####`` (one ``#`` per digit) or printf ``%04d``.

Standard library only, Python 3.6 syntax: the host plugins (inside Nuke's and Resolve's own
interpreters) and the client parse patterns with this one function.
"""

import re
from typing import Optional, Tuple

_HASHES = re.compile(r"#+")
_PRINTF = re.compile(r"%(0?)(\d*)d")


class SequenceError(ValueError):
    """A pattern or a folder that does not hold the expected sequence."""


def frame_token(pattern: str) -> Optional[Tuple[str, int, str]]:
    """``(prefix, padding, suffix)`` around the ``####`` or ``%04d`` token of ``pattern``; None without one.

    Raises:
        SequenceError: more than one frame token.
    """
    tokens = list(_HASHES.finditer(pattern)) + list(_PRINTF.finditer(pattern))
    if not tokens:
        return None
    if len(tokens) > 1:
        raise SequenceError("pattern %r has more than one frame token" % pattern)
    match = tokens[0]
    if match.group(0).startswith("#"):
        padding = len(match.group(0))
    else:
        padding = int(match.group(2)) if match.group(2) else 1
    return pattern[: match.start()], padding, pattern[match.end():]
