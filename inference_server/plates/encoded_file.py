"""An encoded output file as the pieces it is made of: new bytes, and byte ranges of the input file it was
spliced from (:mod:`.exr_chunks`).

Kept in pieces so that nothing is joined before it has to be: a file written to disk or sent whole is joined
once; a client that still holds the input it sent can be sent the input's ranges as references instead of their
bytes (``FrameCopy`` on the wire).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Piece:
    """Consecutive bytes of an encoded file.

    Attributes:
        data: the bytes (or a read-only view of them).
        input_offset: where the same bytes start in the input file the output was made from; None: new bytes.
    """

    data: bytes | memoryview
    input_offset: int | None = None

    @property
    def size(self) -> int:
        return memoryview(self.data).nbytes


@dataclass(frozen=True)
class EncodedFile:
    """An encoded file: its pieces in order (:class:`Piece`)."""

    pieces: tuple[Piece, ...]

    @classmethod
    def of(cls, data: bytes) -> EncodedFile:
        """A file of new bytes only."""
        return cls((Piece(data),))

    @property
    def size(self) -> int:
        return sum(piece.size for piece in self.pieces)

    def join(self) -> bytes:
        """The file's bytes (one copy)."""
        if len(self.pieces) == 1 and isinstance(self.pieces[0].data, bytes):
            return self.pieces[0].data
        return b"".join(piece.data for piece in self.pieces)
