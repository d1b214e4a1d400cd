"""The bytes of an ``.npz`` file (numpy's ``savez``: a zip of ``<name>.npy`` members, stored, zip64) without
copying the arrays: the pieces to write in order are the zip and npy headers (small ``bytes``) and views of
the arrays' own memory. ``np.load`` reads the file as it reads ``np.savez``'s, member for member the same
``.npy`` bytes (only the zip's timestamps differ: fixed at 1980-01-01 here, so equal payloads give equal
files); ``np.savez`` makes anything outside the fast path (an array not C-contiguous, of objects, or with a
header beyond npy format 1.0, a name not ASCII).

And the reverse, :func:`stored_arrays`: the arrays of such a file's bytes as read-only views of them, for a
reader that has checked the bytes already (the cache checks a file's sha256 before it reads it): no member
copied, no CRC computed again.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Mapping

import numpy as np

Piece = bytes | memoryview

_VERSION = 45          # zip64
_DOS_DATE = 0x21       # 1980-01-01 (time 00:00:00)
_MAX32 = 0xFFFFFFFF


def _npy_header(array: np.ndarray) -> bytes | None:
    """The ``.npy`` header ``np.save`` writes for ``array`` (format 1.0), None when it needs another format."""
    buffer = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(buffer, np.lib.format.header_data_from_array_1_0(array))
    except ValueError:  # (a header too long for format 1.0)
        return None
    return buffer.getvalue()


def _savez_bytes(payload: Mapping[str, np.ndarray]) -> list[Piece]:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=True, **payload)  # (numpy's default, named: the arrays are the other keywords)
    return [buffer.getbuffer()]


def npz_pieces(payload: Mapping[str, np.ndarray]) -> list[Piece]:
    """The ``.npz`` file of ``payload`` (name -> array) as pieces to write one after the other.

    The arrays are not copied (their buffers are viewed), so they must not change until the pieces are written.
    """
    members: list[tuple[bytes, bytes, memoryview]] = []
    for name, value in payload.items():
        array = np.asanyarray(value)
        header = _npy_header(array) if array.flags.c_contiguous and not array.dtype.hasobject else None
        if header is None or not name.isascii() or type(array) is not np.ndarray:
            return _savez_bytes(payload)
        members.append(((name + ".npy").encode("ascii"), header, array.reshape(-1).view(np.uint8).data))
    if not members:  # (an empty zip: its end record alone, as np.savez writes it)
        return _savez_bytes(payload)
    pieces: list[Piece] = []
    central: list[bytes] = []
    offset = 0
    for filename, header, data in members:
        size = len(header) + data.nbytes
        crc = zlib.crc32(data, zlib.crc32(header))
        extra = struct.pack("<HHQQ", 1, 16, size, size)  # zip64: the sizes
        local = struct.pack("<4s5H3L2H", b"PK\x03\x04", _VERSION, 0, 0, 0, _DOS_DATE, crc, _MAX32, _MAX32,
                            len(filename), len(extra)) + filename + extra
        central_extra = struct.pack("<HHQQQ", 1, 24, size, size, offset)  # zip64: the sizes and the offset
        central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", _VERSION, _VERSION, 0, 0, 0, _DOS_DATE, crc,
                                   _MAX32, _MAX32, len(filename), len(central_extra), 0, 0, 0, 0, _MAX32)
                       + filename + central_extra)
        pieces += [local, header, data]
        offset += len(local) + size
    directory = b"".join(central)
    count = len(central)
    end64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, _VERSION, _VERSION, 0, 0, count, count, len(directory),
                        offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, offset + len(directory), 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, min(len(directory), _MAX32),
                      min(offset, _MAX32), 0)
    return [*pieces, directory, end64, locator, end]


def pieces_size(pieces: list[Piece]) -> int:
    """Bytes of the file the pieces make."""
    return sum(memoryview(piece).nbytes for piece in pieces)


def _stored_array(data: memoryview, info: zipfile.ZipInfo) -> tuple[str, np.ndarray] | None:
    """One stored ``<name>.npy`` member of the zip ``data`` as (name, read-only view of its values), or None when
    it is not one this reader takes (compressed, encrypted, not ``.npy``, not npy format 1.0/2.0, objects)."""
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1 or not info.filename.endswith(".npy"):
        return None
    at = info.header_offset
    if bytes(data[at:at + 4]) != b"PK\x03\x04":
        return None
    name_length, extra_length = struct.unpack("<2H", data[at + 26:at + 30])
    start = at + 30 + name_length + extra_length
    member = data[start:start + info.file_size]
    if member.nbytes != info.file_size:
        return None
    stream = io.BytesIO(member[:min(member.nbytes, 65536 + 12)])  # (the header only: at most 64 KiB, format 2.0)
    version = np.lib.format.read_magic(stream)
    if version not in ((1, 0), (2, 0)):
        return None
    shape, fortran, dtype = (np.lib.format.read_array_header_1_0(stream) if version == (1, 0)
                             else np.lib.format.read_array_header_2_0(stream))
    if dtype.hasobject:
        return None
    count = int(np.prod(shape, dtype=np.int64))
    offset = stream.tell()
    if offset + count * dtype.itemsize != member.nbytes:
        return None
    values = np.frombuffer(member, dtype, count, offset).reshape(shape, order="F" if fortran else "C")
    return info.filename[:-4], values


def stored_arrays(data: bytes) -> dict[str, np.ndarray] | None:
    """The arrays of an ``.npz`` file's bytes whose members are all stored ``.npy`` files (as :func:`npz_pieces` and
    ``np.savez`` write them): name -> read-only view into ``data`` (which they keep alive), the values ``np.load``
    gives. None when a member is of another kind (compressed, pickled objects, ...) or the zip is not well formed:
    read those with ``np.load``. The members' CRCs are not checked (the caller checked the bytes)."""
    view = memoryview(data)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:  # (the central directory only: the members are viewed)
            infos = archive.infolist()
        arrays = {}
        for info in infos:
            found = _stored_array(view, info)
            if found is None or found[0] in arrays:
                return None
            arrays[found[0]] = found[1]
    except (zipfile.BadZipFile, ValueError, struct.error, OSError):
        return None
    return arrays
