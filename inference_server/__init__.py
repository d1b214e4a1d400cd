"""facebridge inference server: sessions, face pipeline, model backends, gRPC service."""

__version__ = "0.1.0"
