"""The gRPC server: a thin servicer over the engine, sessions, audit log and process lifecycle."""
