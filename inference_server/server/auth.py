"""Who may call the server: the bearer token on every RPC but health, TLS credentials, the peer's identity.

The token check is a server interceptor, so no servicer method can forget it; a refused call ends with
``UNAUTHENTICATED`` and a one-line message that never repeats what the client sent.

Exempt: the standard health service (``/grpc.health.v1.Health/``), so load balancers and ``wait_ready`` can
probe without the secret. Server reflection is *not* exempt: listing the service tells a stranger little (the
.proto is public), but "every call but health" is the simpler rule to audit, and ``grpcurl -H 'authorization:
Bearer ...'`` sends the header with its reflection requests too.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from facebridge.auth import METADATA_KEY, SCHEME, TokenError, ensure_token

from .errors import FaceBridgeError

HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFUSAL_LOG_INTERVAL_S = 10.0
"""Refused calls are logged (stderr, never the audit log: a stranger must not be able to grow a file) at most
once per this many seconds, with the number refused since the last line."""

_LOG = logging.getLogger(__name__)


class ConfigError(FaceBridgeError):
    """The server's own settings cannot be used (``facebridge serve`` exits 2 with this one line)."""


@dataclass(frozen=True)
class Security:
    """What a server checks: its token (and where it came from, for the log) and its TLS credentials."""

    token: str
    token_source: str
    credentials: grpc.ServerCredentials | None  # None: plain TCP
    mutual_tls: bool


def _read_pem(path: Path, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot read ({exc.strerror})") from exc
    if b"-----BEGIN" not in data:
        raise ConfigError(f"{what} {path}: not a PEM file")
    return data


def security_for(host: str, loopback: bool, token: str | None, tls_cert: Path | None, tls_key: Path | None,
                 tls_client_ca: Path | None, insecure: bool, environ: Mapping[str, str]) -> Security:
    """Check the server's sharing settings and load what they name; ConfigError says what is wrong in one line.

    A non-loopback address without TLS is refused unless ``insecure`` says so explicitly: the token would
    cross the network in clear text.
    """
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if tls_client_ca is not None and tls_cert is None:
        raise ConfigError("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS)")
    if tls_cert is None and not loopback and not insecure:
        raise ConfigError(f"refusing to serve {host} without TLS: the token and every frame would cross the network "
                          "in clear text; give --tls-cert and --tls-key, or --insecure to accept that")
    credentials = None
    if tls_cert is not None and tls_key is not None:
        pair = (_read_pem(tls_key, "--tls-key"), _read_pem(tls_cert, "--tls-cert"))
        ca = _read_pem(tls_client_ca, "--tls-client-ca") if tls_client_ca is not None else None
        credentials = grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)
    if token is not None:
        if not token.strip():
            raise ConfigError("the token is empty")
        found, source = token.strip(), "the server's configuration"
    else:
        try:
            found, source = ensure_token(environ)
        except TokenError as exc:
            raise ConfigError(str(exc)) from exc
    return Security(found, source, credentials, tls_client_ca is not None)


def _authorized(metadata: Any, expected: bytes) -> bool:
    """Whether the call's metadata carries ``authorization: Bearer <expected>`` (compared in constant time)."""
    for key, value in metadata or ():
        if key != METADATA_KEY:
            continue
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        scheme, _, given = text.strip().partition(" ")
        if scheme.lower() == SCHEME.lower() and hmac.compare_digest(given.strip().encode("utf-8"), expected):
            return True
    return False


def _denied(handler: grpc.RpcMethodHandler[Any, Any], message: str,
            noted: Callable[[grpc.ServicerContext], None]) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same shape as ``handler`` that ends the call with UNAUTHENTICATED. The request is not
    parsed (no deserializer): a stranger's bytes are never decoded."""

    def deny(_request: object, context: grpc.ServicerContext) -> Any:
        noted(context)
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    kinds: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler[Any, Any]]] = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    make = kinds[(bool(handler.request_streaming), bool(handler.response_streaming))]
    return make(deny, request_deserializer=None, response_serializer=handler.response_serializer)


class TokenInterceptor(grpc.ServerInterceptor):
    """Lets a call through only with the server's bearer token; health calls need none."""

    def __init__(self, token: str) -> None:
        self._expected = token.encode("utf-8")
        self._lock = threading.Lock()
        self._refused = 0
        self._logged_at = -REFUSAL_LOG_INTERVAL_S

    def _note(self, method: str, reason: str, context: grpc.ServicerContext) -> None:
        with self._lock:
            self._refused += 1
            now = time.monotonic()
            if now - self._logged_at < REFUSAL_LOG_INTERVAL_S:
                return
            count, self._refused, self._logged_at = self._refused, 0, now
        _LOG.warning("refused %s from %s: %s (%d call(s) refused since the last such line)", method, context.peer(),
                     reason, count)

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any],
                          handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(HEALTH_PREFIX):
            return handler
        if _authorized(handler_call_details.invocation_metadata, self._expected):
            return handler
        given = any(key == METADATA_KEY for key, _ in handler_call_details.invocation_metadata or ())
        reason = "wrong token" if given else "no token"
        return _denied(handler, f"{method}: {reason}: send 'authorization: Bearer <token>' with the server's token "
                                "($FACEBRIDGE_TOKEN, else the token file in $XDG_CONFIG_HOME/facebridge)",
                       lambda context: self._note(method, reason, context))


def peer_identity(context: grpc.ServicerContext) -> dict[str, object]:
    """The authenticated peer, for the audit log: its address and, over mutual TLS, its certificate's subject."""
    record: dict[str, object] = {"peer": context.peer()}
    try:
        auth = context.auth_context()
    except Exception:  # noqa: BLE001 - the identity is informative; never fail a call over it
        auth = {}
    subject = auth.get("x509_subject") or auth.get("x509_common_name")
    if subject:
        values = subject if isinstance(subject, (list, tuple)) else [subject]
        record["peer_cert_subject"] = ", ".join(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                                                for v in values)
    return record
