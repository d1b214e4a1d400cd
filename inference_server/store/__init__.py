"""Persistent state under the cache dir: the shot database (SQLite, WAL) and checksummed cache payloads."""
