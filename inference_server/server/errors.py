"""Domain errors of the server. They are mapped to gRPC status codes once, in ``service.py``."""

from __future__ import annotations


class FaceBridgeError(Exception):
    """Base class of the errors a client can be told about."""


class InvalidRequest(FaceBridgeError):
    """The request is malformed or names impossible parameters."""


class SessionNotFound(FaceBridgeError):
    """No open session has this id (never opened, closed, or the server restarted)."""


class ShotNotFound(FaceBridgeError):
    """The shot database holds no analysis of this shot."""


class ServerBusy(FaceBridgeError):
    """A server-wide limit (open sessions) is reached."""


class StreamIdle(FaceBridgeError):
    """A stream's client sent nothing for the server's stream idle time (``stream_idle_s``)."""


class SourceError(FaceBridgeError):
    """A source identity image cannot be used (unreadable, or no face in it)."""


class ModelUnavailable(FaceBridgeError):
    """A model the session asks for cannot be used (missing, refused as unverified, or not loadable)."""
