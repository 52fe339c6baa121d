"""Whole messages on file descriptors, with no copy beyond the kernel's.

A message is framed as ``multiprocessing.connection`` frames it (a 4-byte big-endian length,
or -1 and an 8-byte length for messages of 2 GiB and more), so either end may be a standard
``Connection``. Reads land in one buffer of the message's final size; writes gather their
parts with ``writev`` instead of joining them first:

    write_message(fd, [part, part, ...]) ── writev ──► [len | part | part ...] ──►
        read_message(fd) ── readv into one bytearray ──► bytearray (or read_into(fd, view))

Packed objects (``pack``/``unpack``) pickle with protocol 5 and carry large buffers
(``pickle.PickleBuffer``) out of band, as their own parts: a megabyte argument is then
written from, and unpickled as a view into, the buffers it already lives in.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
from collections.abc import Sequence
from typing import Any

_LEN = struct.Struct("!i")
_LONG = struct.Struct("!Q")
# A packed object: its pickle's length and how many out-of-band buffers follow it.
_HEAD = struct.Struct("!QI")
_PART = struct.Struct("!Q")
# Buffers smaller than this are pickled in band: a part of its own costs more than a copy.
OUT_OF_BAND_MIN = 64 * 1024
# os.writev takes at most this many parts per call (IOV_MAX on Linux).
_IOV_MAX = 1024

Part = bytes | bytearray | memoryview


def read_into(fd: int, view: memoryview) -> None:
    """Fill ``view`` from ``fd``; EOFError at a clean end before any byte, OSError mid-way."""
    pos, size = 0, len(view)
    while pos < size:
        n = os.readv(fd, [view[pos:]])
        if n == 0:
            if pos == 0:
                raise EOFError
            raise OSError("got end of file during message")
        pos += n


def read_message(fd: int) -> bytearray:
    """Read one framed message."""
    head = bytearray(_LEN.size)
    read_into(fd, memoryview(head))
    (size,) = _LEN.unpack(head)
    if size == -1:
        long = bytearray(_LONG.size)
        read_into(fd, memoryview(long))
        (size,) = _LONG.unpack(long)
    buf = bytearray(size)
    read_into(fd, memoryview(buf))
    return buf


def frame(size: int) -> bytes:
    """The length prefix of a message of ``size`` bytes."""
    return _LEN.pack(size) if size < 0x7FFFFFFF else _LEN.pack(-1) + _LONG.pack(size)


def write_message(fd: int, parts: Sequence[Part]) -> None:
    """Write the parts as one framed message (blocking until all of it is written)."""
    views = [memoryview(frame(sum(map(len, parts))))]
    views += [memoryview(p).cast("B") for p in parts if len(p)]
    while views:
        n = os.writev(fd, views[:_IOV_MAX])
        while n and n >= len(views[0]):
            n -= len(views.pop(0))
        if n:
            views[0] = views[0][n:]


def dumps(obj: Any, pickler: type[pickle.Pickler] = pickle.Pickler, **kwargs: Any) -> bytes:
    """``pickle.dumps`` through a file: the same bytes, but a large bytes-like object inside
    is written once, where ``pickle.dumps`` grows and copies its output buffer (ten times
    slower for a megabyte here). ``kwargs`` go to the pickler (protocol defaults to 5)."""
    out = io.BytesIO()
    pickler(out, kwargs.pop("protocol", 5), **kwargs).dump(obj)
    return out.getvalue()


def pack(obj: Any) -> list[Part]:
    """Pickle ``obj`` into parts: a head, the pickle, then each large out-of-band buffer."""
    buffers: list[pickle.PickleBuffer] = []

    def out_of_band(buf: pickle.PickleBuffer) -> bool:
        if buf.raw().nbytes < OUT_OF_BAND_MIN:
            return True  # in band
        buffers.append(buf)
        return False

    blob = dumps(obj, buffer_callback=out_of_band)
    parts: list[Part] = [_HEAD.pack(len(blob), len(buffers)), blob]
    for buf in buffers:
        raw = buf.raw()
        parts += [_PART.pack(raw.nbytes), raw]
    return parts


def packed_size(parts: Sequence[Part]) -> int:
    return sum(map(len, parts))


def split(view: memoryview, pos: int = 0) -> tuple[memoryview, list[memoryview], int]:
    """Find the packed object at ``pos`` in ``view``: (pickle, out-of-band buffers, position
    after it); all three are views into ``view``. ``pickle.loads(p, buffers=b)`` loads it."""
    size, count = _HEAD.unpack_from(view, pos)
    pos += _HEAD.size
    blob = view[pos : pos + size]
    pos += size
    buffers = []
    for _ in range(count):
        (length,) = _PART.unpack_from(view, pos)
        pos += _PART.size
        buffers.append(view[pos : pos + length])
        pos += length
    return blob, buffers, pos
