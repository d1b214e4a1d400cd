"""Building, starting and stopping the gRPC server (``facebridge serve``)."""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Mapping
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from threadpoolctl import ThreadpoolController

from ..faces.dlib_models import DlibFaceModels
from ..paths import default_audit_log, default_cache_dir, scratch_parent
from .audit import AuditLog
from .auth import Security, TokenInterceptor, security_for
from .device import describe_device, resolve_device
from ..store.private import check_writable, private_dir
from .engine import FaceSwapEngine
from .file_roots import FileRoots
from .scratch import make_scratch
from .service import MAX_MESSAGE_BYTES, SERVICE_NAME, FaceBridgeService, add_service

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``facebridge serve`` takes (see its ``--help``); the defaults are a safe loopback server.

    Attributes:
        token: the bearer token every RPC but health must carry; None: ``$FACEBRIDGE_TOKEN``, else the token
            file (``$XDG_CONFIG_HOME/facebridge/token``, created with mode 0600 at the first start).
        tls_cert, tls_key: PEM files: serve TLS. tls_client_ca: also require client certificates it signed.
        insecure: bind a non-loopback address without TLS (refused otherwise).
        allow_roots: the path transport reads and writes only regular files under these folders; none: the
            path transport is not offered.
        allow_unverified: the server may load model files whose sha256 differs from the registry's (a client
            may ask only when this is set).
        memory_budget: bytes for the in-memory caches and memos together.
        max_sessions, max_sessions_per_peer: open sessions in all and per client address.
        session_idle_s: a session unused this long is closed.
        stream_idle_s: a stream that sends nothing this long is ended.
        max_streams: streaming calls at once (unary calls and health keep their own capacity).
    """

    host: str = "127.0.0.1"
    port: int = 50051
    device: str = "auto"
    audit_log: Path | None = None
    cache_dir: Path | None = None  # None: default_cache_dir()
    max_workers: int = 8
    models_dir: Path | None = None   # None: --models-dir precedence (env, config file, default)
    slow_cpu_precision: bool = False  # fp16/bf16 even on a CPU without native support (tests)
    token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    insecure: bool = False
    allow_roots: tuple[Path, ...] = ()
    allow_unverified: bool = False
    memory_budget: int = 1024**3
    max_sessions: int = 64
    max_sessions_per_peer: int = 16
    session_idle_s: float = 3600.0
    stream_idle_s: float = 120.0
    max_streams: int = 6


UNARY_RESERVE = 4
"""Server threads kept for unary calls and health beyond ``max_streams`` (streams are refused beyond it)."""
QUEUED_RPCS = 16
"""Calls that may wait for a thread; more are refused at once (RESOURCE_EXHAUSTED) instead of queueing."""


def worker_threads(config: ServerConfig) -> int:
    """The server's threads: every stream may hold one, and ``UNARY_RESERVE`` more stay for the rest."""
    return max(config.max_workers, config.max_streams + UNARY_RESERVE)


def _sweep_sessions(service: FaceBridgeService, idle_s: float) -> None:
    """Close idle sessions every ``idle_s / 4`` seconds (1 to 60), for as long as the server runs."""
    interval = min(60.0, max(1.0, idle_s / 4))
    while not service.stopped.wait(interval):
        try:
            service.expire_sessions()
        except Exception:  # noqa: BLE001 - the sweeper must outlive one bad sweep
            _LOG.exception("session sweep failed")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class RunningServer:
    """A started server; ``stop`` is graceful (in-flight calls get ``grace`` seconds)."""

    security: Security | None = None  # its token (and where it came from) and TLS

    def __init__(self, server: grpc.Server, port: int, health_servicer: health.HealthServicer,
                 service: FaceBridgeService, scratch_dir: Path) -> None:
        self.server = server
        self.port = port
        self.health = health_servicer
        self.service = service
        self._scratch_dir = scratch_dir

    def stop(self, grace: float = 5.0) -> None:
        self.health.enter_graceful_shutdown()
        self.service.stopped.set()
        self.server.stop(grace).wait()
        self.service.engine.pool.unload()
        self.service.engine.close_models()
        shutil.rmtree(self._scratch_dir, ignore_errors=True)


def _usable_cache_dir(named: Path | None) -> Path:
    """The cache dir, made (0700) when missing and checked writable: one line (StoreError) when it is not."""
    cache_dir = named if named is not None else default_cache_dir()
    private_dir(cache_dir, own=named is None)  # the default location is ours; a named folder keeps its mode
    check_writable(cache_dir)
    return cache_dir


def one_blas_thread(environ: Mapping[str, str]) -> None:
    """Let the OpenBLAS that numpy loaded run each matrix product on the calling thread, unless ``environ`` sets
    ``OPENBLAS_NUM_THREADS`` (then as it says).

    The server's parallelism is across frames (two in flight, the analysis's readers) and its products are small
    (the warp's 8192x84 by 84x2 blocks): OpenBLAS's own threads only hand a few rows each to a core the other
    frame needs and spin while they wait (the warp's product took 1.8 ms with two threads, 0.8 ms with one, on
    the 2-core machine). Each row's sum is the same either way (outputs bit-identical: benchmarks/first_render.py).
    Libraries loaded later (a model's torch) keep their own settings."""
    if "OPENBLAS_NUM_THREADS" not in environ:
        ThreadpoolController().select(internal_api="openblas").limit(limits=1)


def start_server(config: ServerConfig, models: DlibFaceModels | None = None) -> RunningServer:
    """Load the models, bind ``config.host:config.port`` (port 0 = any free port) and start serving.

    The sharing settings are checked first (``ConfigError``, before any model loads): the token (created
    at the first start, see ``facebridge.auth``) and TLS, refused off loopback without TLS unless ``insecure``.
    """
    security = security_for(config.host, is_loopback(config.host), config.token, config.tls_cert, config.tls_key,
                            config.tls_client_ca, config.insecure, os.environ)
    roots = FileRoots(config.allow_roots)  # RootsError (one line) for a root that is not a folder
    cache_dir = _usable_cache_dir(config.cache_dir)
    device = resolve_device(config.device)
    one_blas_thread(os.environ)
    scratch = make_scratch(scratch_parent())  # (stale scratch folders of gone servers are removed first)
    try:
        engine = FaceSwapEngine(scratch, cache_dir, models=models or DlibFaceModels(embed_in_process=False),
                                models_dir=config.models_dir, device=device,
                                slow_cpu_precision=config.slow_cpu_precision, roots=roots,
                                memory_bytes=config.memory_budget, max_sessions=config.max_sessions,
                                max_sessions_per_peer=config.max_sessions_per_peer,
                                session_idle_s=config.session_idle_s,
                                allow_unverified=config.allow_unverified)
        audit = AuditLog(config.audit_log or (config.cache_dir / "audit.jsonl" if config.cache_dir
                                              else default_audit_log()))
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)  # a failed start leaves no scratch folder
        raise
    service = FaceBridgeService(engine, audit, describe_device(device), roots.offered,
                                max_streams=config.max_streams, stream_idle_s=config.stream_idle_s)
    workers = worker_threads(config)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="facebridge"),
        maximum_concurrent_rpcs=workers + QUEUED_RPCS,
        interceptors=[TokenInterceptor(security.token)],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    add_service(service, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    host = f"[{config.host}]" if ":" in config.host and not config.host.startswith("[") else config.host
    port = (server.add_secure_port(f"{host}:{config.port}", security.credentials) if security.credentials is not None
            else server.add_insecure_port(f"{host}:{config.port}"))
    if port == 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise OSError(f"cannot bind {config.host}:{config.port}")
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    sweeper = threading.Thread(target=_sweep_sessions, args=(service, config.session_idle_s), daemon=True,
                               name="facebridge-session-sweeper")
    sweeper.start()
    running = RunningServer(server, port, health_servicer, service, scratch)
    running.security = security
    return running


def serve(config: ServerConfig) -> int:
    """Run until SIGINT or SIGTERM; print the bound address as the first line of stdout."""
    running = start_server(config)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        _LOG.info("signal %d: shutting down", signum)
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    print(f"facebridge serving on {config.host}:{running.port} (device {running.service.device})", flush=True)
    if running.security is not None:  # where the token is (never the token), and how the wire is protected
        wire = ("mutual TLS" if running.security.mutual_tls else "TLS") if running.security.credentials else "plain TCP"
        print(f"facebridge: token from {running.security.token_source}; {wire}", file=sys.stderr, flush=True)
    while not stop.wait(0.5):
        pass
    running.stop()
    print("facebridge server stopped", file=sys.stderr, flush=True)
    return 0
