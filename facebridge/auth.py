"""The shared secret of a facebridge server and its clients, found the same way on both sides.

Standard library only: the server, the CLI, the panel and the hosts' sidecars all use it.

The token comes from ``$FACEBRIDGE_TOKEN`` when set (and not empty), else from the token file
``$XDG_CONFIG_HOME/facebridge/token`` (``~/.config/facebridge/token``). ``facebridge serve`` creates that file
with a random token (mode 0600, its folder 0700) the first time it starts without one. Every RPC but the
standard health service carries it as gRPC metadata ``authorization: Bearer <token>``.

A token file that other users can read is refused (as ssh refuses such a key): its token is no secret.

The client's TLS settings come from the environment too, so that hosts' sidecars inherit them:
``$FACEBRIDGE_TLS_CA`` (PEM: the CA that signed the server's certificate; setting it makes the client use
TLS), ``$FACEBRIDGE_TLS_CERT`` and ``$FACEBRIDGE_TLS_KEY`` (PEM: the client's certificate and key, for a
server that requires client certificates).
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Mapping, NamedTuple

ENV_TOKEN = "FACEBRIDGE_TOKEN"
ENV_TLS_CA = "FACEBRIDGE_TLS_CA"
ENV_TLS_CERT = "FACEBRIDGE_TLS_CERT"
ENV_TLS_KEY = "FACEBRIDGE_TLS_KEY"
METADATA_KEY = "authorization"
SCHEME = "Bearer"


class TokenError(Exception):
    """The token cannot be used or created (a one-line message naming the file and what to do)."""


def token_path(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CONFIG_HOME/facebridge/token``, else ``~/.config/facebridge/token``."""
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "facebridge" / "token"


def token_lookup(environ: Mapping[str, str] = os.environ) -> str:
    """Where tokens are looked for, for messages: ``$FACEBRIDGE_TOKEN, else /home/me/.config/facebridge/token``."""
    return f"${ENV_TOKEN}, else {token_path(environ)}"


def _read_token_file(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TokenError(f"token file {path}: cannot read ({exc.strerror})") from exc
    with os.fdopen(fd, "r", encoding="utf-8") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise TokenError(f"token file {path}: not a regular file")
        if os.name == "posix" and info.st_mode & 0o077:
            raise TokenError(f"token file {path}: readable by other users (mode {stat.S_IMODE(info.st_mode):04o}); "
                             f"run 'chmod 600 {path}' or replace it with a new token")
        token = handle.read(4096).strip()
    if not token:
        raise TokenError(f"token file {path}: empty")
    return token


def find_token(environ: Mapping[str, str] = os.environ) -> str | None:
    """``$FACEBRIDGE_TOKEN``, else the token file's token, else None (no file yet)."""
    token = environ.get(ENV_TOKEN, "").strip()
    if token:
        return token
    return _read_token_file(token_path(environ))


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


def ensure_token(environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """The server's token and where it came from (``$FACEBRIDGE_TOKEN`` or the file's path, never the token);
    creates the token file with a new random token when there is none.

    The file appears complete or not at all (written under a temporary name, then linked into place), so a
    client reading it while a server starts never sees a partial token, and two servers starting at once
    agree on one token.
    """
    found = find_token(environ)
    path = token_path(environ)
    if found is not None:
        return found, (f"${ENV_TOKEN}" if environ.get(ENV_TOKEN, "").strip() else str(path))
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".token.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(new_token() + "\n")
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another server created it first: use theirs
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise TokenError(f"token file {path}: cannot create ({exc.strerror}); set ${ENV_TOKEN} instead") from exc
    token = _read_token_file(path)
    if token is None:
        raise TokenError(f"token file {path}: vanished while it was created")
    return token, str(path)


def bearer(token: str) -> str:
    """The ``authorization`` metadata value for ``token``."""
    return f"{SCHEME} {token}"


class ClientTLS(NamedTuple):
    """PEM files of a client's TLS settings (``ca`` None: plain TCP)."""

    ca: Path | None
    cert: Path | None
    key: Path | None


PLAIN = ClientTLS(None, None, None)
"""Plain TCP (a private loopback server)."""


def client_tls(environ: Mapping[str, str] = os.environ) -> ClientTLS:
    """The client's TLS settings from ``$FACEBRIDGE_TLS_CA``, ``$FACEBRIDGE_TLS_CERT``, ``$FACEBRIDGE_TLS_KEY``."""

    def path(name: str) -> Path | None:
        value = environ.get(name, "").strip()
        return Path(value).expanduser() if value else None

    return ClientTLS(path(ENV_TLS_CA), path(ENV_TLS_CERT), path(ENV_TLS_KEY))
