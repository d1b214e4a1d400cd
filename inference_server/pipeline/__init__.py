"""Per-frame face pipeline: detect, crop, convert, swap, composite in the plate's linear space."""
