"""User interfaces of facebridge (the artist panel)."""
