"""Face restoration: the embedded classical enhancer (no model file) in :mod:`.enhancer`."""
