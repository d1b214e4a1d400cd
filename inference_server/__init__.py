"""facebridge inference server: sessions, face pipeline, model backends, gRPC service."""

from facebridge import __version__

__all__ = ["__version__"]
