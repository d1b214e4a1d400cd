"""Errors the client raises. gRPC errors are mapped to these once, in ``grpc_client.py``."""

from __future__ import annotations


class ClientError(Exception):
    """Something a user must hear about, in one line.

    Attributes:
        retryable: whether trying again later may succeed (server unavailable or busy).
    """

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
