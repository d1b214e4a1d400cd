"""A private facebridge server on a free loopback port, for the length of one run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, cast

from facebridge.auth import ENV_TOKEN, new_token

from .errors import ClientError

_READY = re.compile(r"facebridge serving on (\S+):(\d+)")


class LocalServer:
    """Starts ``python -m facebridge serve --port 0`` and stops it on exit.

    Use as a context manager; ``address`` is ``127.0.0.1:PORT`` once started. The server gets a fresh random
    ``token`` of its own (through ``$FACEBRIDGE_TOKEN``, never on its command line): pass it to the client.

    Args:
        device: passed to ``serve --device``.
        audit_log: passed to ``serve --audit-log`` when given.
        cache_dir: passed to ``serve --cache-dir`` when given.
        models_dir: passed to ``serve --models-dir`` when given.
        allow_roots: folders the run reads and writes by path (``serve --allow-root`` each): the private server
            touches files only there; none: frames are streamed.
        allow_unverified: start the server with ``--allow-unverified`` (the user's own server, the user's
            decision; a shared server decides this for itself).
        startup_timeout: seconds to wait for the server to print its address.
    """

    def __init__(self, device: str = "auto", audit_log: Path | None = None, startup_timeout: float = 120.0,
                 cache_dir: Path | None = None, models_dir: Path | None = None,
                 allow_roots: Sequence[str | Path] = (), allow_unverified: bool = False) -> None:
        self.device = device
        self.allow_roots = tuple(allow_roots)
        self.allow_unverified = allow_unverified
        self.cache_dir = cache_dir
        self.models_dir = models_dir
        self.audit_log = audit_log
        self.startup_timeout = startup_timeout
        self.address = ""
        self.token = new_token()
        self._process: subprocess.Popen[str] | None = None

    def spawn(self) -> None:
        """Start the server's process without waiting for it (``with`` waits for its address); once only."""
        if self._process is not None:
            return
        command = [sys.executable, "-m", "facebridge", "serve", "--host", "127.0.0.1", "--port", "0",
                   "--device", self.device]
        if self.audit_log is not None:
            command += ["--audit-log", str(self.audit_log)]
        if self.cache_dir is not None:
            command += ["--cache-dir", str(self.cache_dir)]
        if self.models_dir is not None:
            command += ["--models-dir", str(self.models_dir)]
        for root in self.allow_roots:
            command += ["--allow-root", str(root)]
        if self.allow_unverified:
            command.append("--allow-unverified")
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                         env={**os.environ, ENV_TOKEN: self.token})

    def __enter__(self) -> "LocalServer":
        self.spawn()
        assert self._process is not None
        stdout = cast(IO[str], self._process.stdout)  # a pipe (stdout=PIPE), never None
        line_holder: list[str] = []
        reader = threading.Thread(target=lambda: line_holder.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.startup_timeout)
        match = _READY.search(line_holder[0]) if line_holder else None
        if match is None:
            code = self._process.poll()
            self.stop()
            state = f"exited with code {code}" if code is not None else f"did not start within {self.startup_timeout:.0f} s"
            raise ClientError(f"local facebridge server {state}")
        self.address = f"{match.group(1)}:{match.group(2)}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the server to shut down gracefully (SIGTERM); kill it if it does not within ``timeout``."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
