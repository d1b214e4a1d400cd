"""facebridge wire contract: generated protobuf/gRPC modules (``facebridge.v1``) and chunking helpers."""
