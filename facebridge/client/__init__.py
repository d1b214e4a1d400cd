"""Host-agnostic facebridge client: sequences, the gRPC client, a private local server, progress, reports."""
