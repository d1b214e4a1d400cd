"""Encoding and hashing a stored plate crop: the payload cache's .npz writer against np.savez, in one run.

The payload cache writes a payload as a .npz file built from the arrays' headers and views
(``store/npz_file.npz_pieces``) and hashes the pieces as they are, where ``np.savez`` into memory copies
every array first. Both are timed here on a 1080x1320 float32 RGB crop (what a 1080p face's stored plate
was before half-float storage) and its half-float version: CPU time of the calling thread, fastest of
``--repeats``, and the ratio (ours / np.savez's; below 1 is faster).

Usage: python benchmarks/payload_write.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import time
from collections.abc import Callable, Iterable

import numpy as np

from inference_server.store.npz_file import npz_pieces


def _savez(payload: dict[str, np.ndarray]) -> list[bytes]:
    buffer = io.BytesIO()
    np.savez(buffer, **payload)  # type: ignore[arg-type]  # (numpy's stubs: the arrays are the other keywords)
    return [buffer.getvalue()]


def fastest(encode: Callable[[], Iterable[bytes | memoryview]], repeats: int) -> float:
    """Fastest CPU seconds (this thread) of encoding and hashing, over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        digest = hashlib.sha256()
        for piece in encode():
            digest.update(piece)
        times.append(time.thread_time() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rgb = np.random.default_rng(15).random((1080, 1320, 3), dtype=np.float32)
    for name, payload in (("float32 crop", {"rgb": rgb}), ("half crop", {"rgb_half": rgb.astype(np.float16)})):
        ours = fastest(functools.partial(npz_pieces, payload), args.repeats)
        theirs = fastest(functools.partial(_savez, payload), args.repeats)
        print(f"{name:14s} npz_pieces {ours * 1e3:7.1f} ms   np.savez {theirs * 1e3:7.1f} ms   ratio {ours / theirs:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
