"""Writing a file so that no reader ever sees half of it: a temporary name beside it, renamed when complete.

Standard library only, Python 3.6 syntax: presets are written by the host plugins too.
"""

import os
import uuid
from typing import Optional, Union

PathLike = Union[str, "os.PathLike[str]"]


def write_atomic(path: PathLike, data: Union[bytes, bytearray], mode: Optional[int] = None,
                 durable: bool = False) -> None:
    """Write ``data`` to ``.NAME.<random>.tmp`` beside ``path`` and rename it into place; on any failure the
    temporary file is removed and ``path`` is as it was (a previous file replaced only when complete).

    Args:
        mode: the file's permission bits (e.g. 0o444 for a read-only result); None: the process' default.
        durable: flush to disk before the rename (a file other machines will read, e.g. a farm's analysis).
    """
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, ".%s.%s.tmp" % (os.path.basename(target), uuid.uuid4().hex[:12]))
    try:
        with open(tmp, "xb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
