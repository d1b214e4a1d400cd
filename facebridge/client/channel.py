"""The client's channel to a server: TLS when asked for, and the bearer token on every call.

The token travels as call metadata added by one client interceptor, so it is sent the same way over plain
loopback TCP and over TLS (gRPC's call credentials would need a secure channel) and no call site can forget
it. Health calls carry it too; the server does not need it there.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from facebridge.auth import METADATA_KEY, ClientTLS, bearer

from .errors import ClientError


@dataclass(frozen=True)
class _CallDetails(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: Any
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                   grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds ``authorization: Bearer <token>`` to every call's metadata."""

    def __init__(self, token: str) -> None:
        self._entry = (METADATA_KEY, bearer(token))

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [entry for entry in (details.metadata or ()) if entry[0] != METADATA_KEY] + [self._entry]
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            getattr(details, "wait_for_ready", None), getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation: Any, client_call_details: grpc.ClientCallDetails,
                              request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: grpc.ClientCallDetails,
                               request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation: Any, client_call_details: grpc.ClientCallDetails,
                               request_iterator: Any) -> Any:
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation: Any, client_call_details: grpc.ClientCallDetails,
                                request_iterator: Any) -> Any:
        return continuation(self._details(client_call_details), request_iterator)


def _unregistered(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A multi-callable's arguments ``(method, request_serializer, response_deserializer, _registered_method)``
    with ``_registered_method`` off, however it was passed."""
    if len(args) > 3:
        args = (*args[:3], False, *args[4:])
    if "_registered_method" in kwargs:
        kwargs = {**kwargs, "_registered_method": False}
    return args, kwargs


class _SerialisedCallables(grpc.Channel):
    """A channel whose multi-callables are created one at a time and never registered with the channel's core
    (the calls themselves run concurrently).

    An intercepted channel creates a multi-callable for every call, and for a generated stub's methods grpcio
    registers each with the channel's core (``Channel._get_registered_call_handle``, documented as not
    thread-safe): two threads starting calls at the same moment (the panel's workers) crashed the process in it,
    and so did one registering while another thread's call was under way. Unregistered calls name their method
    in each call instead (the same calls on the wire)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._channel = channel
        self._lock = threading.Lock()

    def _callable(self, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The underlying channel's multi-callable of ``kind`` (``unary_unary`` ...), unregistered, one at a time."""
        args, kwargs = _unregistered(args, kwargs)
        with self._lock:
            return getattr(self._channel, kind)(*args, **kwargs)

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        self._channel.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Any) -> None:
        self._channel.unsubscribe(callback)

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        return self._callable("unary_unary", args, kwargs)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._callable("unary_stream", args, kwargs)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return self._callable("stream_unary", args, kwargs)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._callable("stream_stream", args, kwargs)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> _SerialisedCallables:  # noqa: PYI034 (typing.Self is Python 3.11; 3.10 is supported)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pem(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ClientError(f"{what} {path}: cannot read ({exc.strerror})") from exc


def open_channel(address: str, options: Sequence[tuple[str, Any]], token: str | None,
                 tls: ClientTLS) -> tuple[grpc.Channel, grpc.Channel]:
    """``(raw, channel)``: the connection itself (for readiness) and the one to make calls on (with the token).

    ``tls.ca`` set: TLS, checking the server's certificate against that CA; ``tls.cert``/``tls.key`` add a
    client certificate for a server that requires one (mutual TLS).
    """
    if (tls.cert is None) != (tls.key is None):
        raise ClientError("a client certificate needs its key: set both FACEBRIDGE_TLS_CERT and FACEBRIDGE_TLS_KEY")
    if tls.ca is not None:
        credentials = grpc.ssl_channel_credentials(root_certificates=_pem(tls.ca, "TLS CA"),
                                                   private_key=_pem(tls.key, "TLS client key"),
                                                   certificate_chain=_pem(tls.cert, "TLS client certificate"))
        raw = grpc.secure_channel(address, credentials, options=list(options))
    elif tls.cert is not None:
        raise ClientError("a client certificate needs TLS: set FACEBRIDGE_TLS_CA to the CA of the server's certificate")
    else:
        raw = grpc.insecure_channel(address, options=list(options))
    channel = grpc.intercept_channel(_SerialisedCallables(raw), _BearerToken(token)) if token else raw
    return raw, channel
