"""Shared fixtures: real faces from ../shared, the dlib models, and a real gRPC server on a loopback port."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from typing import Any
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import FACES_DIR  # noqa: E402


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    if not FACES_DIR.is_dir():
        pytest.skip(f"real face photos not found at {FACES_DIR} (the shared data folder beside the repository)")
    return FACES_DIR


@pytest.fixture(scope="session")
def dlib_models():
    from inference_server.faces.dlib_models import DlibFaceModels

    return DlibFaceModels()


@pytest.fixture(scope="session")
def audit_log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audit") / "audit.jsonl"


@pytest.fixture(scope="session", autouse=True)
def session_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One random token for the whole session in ``$FACEBRIDGE_TOKEN``, so the session server, every client
    and every CLI subprocess share it; ``$XDG_CONFIG_HOME`` points into the session's temp folder, so no test
    reads or creates a token file under ~/.config. (Session-wide: the session server starts before any
    function-scoped fixture runs.)"""
    import secrets

    with pytest.MonkeyPatch.context() as patch:
        token = secrets.token_urlsafe(32)
        patch.setenv("FACEBRIDGE_TOKEN", token)
        patch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.getbasetemp() / "xdg-config"))
        yield token


@pytest.fixture(scope="session")
def server(dlib_models, audit_log_path: Path, tmp_path_factory: pytest.TempPathFactory,
           session_token: str) -> Iterator[object]:
    """One real server on 127.0.0.1:<free port> for the whole test session, with its own empty cache dir
    and an empty models folder (the embedded defaults only), taking the session's token."""
    from inference_server.server.app import ServerConfig, start_server

    running = start_server(ServerConfig(host="127.0.0.1", port=0, device="cpu", audit_log=audit_log_path,
                                        token=session_token,
                                        cache_dir=tmp_path_factory.mktemp("server-cache"),
                                        models_dir=tmp_path_factory.mktemp("no-models"),
                                        allow_roots=(tmp_path_factory.getbasetemp(),)),  # the path transport's tests
                           models=dlib_models)
    yield running
    running.stop(grace=2.0)


@pytest.fixture(scope="session")
def server_address(server) -> str:
    return f"127.0.0.1:{server.port}"


@pytest.fixture()
def client(server_address: str) -> Iterator[object]:
    """A client of the session server; the sessions a test opens through it are closed after the test (all
    tests are one peer to the server, whose per-peer session cap they would otherwise fill)."""
    from facebridge.client.grpc_client import FaceBridgeClient

    with FaceBridgeClient(server_address, timeout=120.0) as c:
        opened: list[str] = []
        open_session: Callable[..., Any] = c.open_session

        def recording_open_session(*args: Any, **kwargs: Any) -> Any:
            session = open_session(*args, **kwargs)
            opened.append(session.session_id)
            return session

        setattr(c, "open_session", recording_open_session)
        yield c
        for session_id in opened:
            try:
                c.close_session(session_id)
            except Exception:  # noqa: BLE001 - already closed by the test, or the server went away
                pass


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep default cache/audit locations of any server started by a test out of the user's home."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.getbasetemp() / "xdg-data"))  # no model files
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.getbasetemp() / "xdg-config"))
    monkeypatch.delenv("FACEBRIDGE_MODELS_DIR", raising=False)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
