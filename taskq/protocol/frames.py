"""Whole messages on file descriptors, with no copy beyond the kernel's.

A message is framed as ``multiprocessing.connection`` frames it (a 4-byte big-endian length,
or -1 and an 8-byte length for messages of 2 GiB and more), so either end may be a standard
``Connection``. Reads land in one buffer of the message's final size; writes gather their
parts with ``writev`` instead of joining them first:

    write_message(fd, [part, part, ...]) ── writev ──► [len | part | part ...] ──►
        read_message(fd) ── readv into one bytearray ──► bytearray (or read_into(fd, view))

A reader may bound a frame before anything is allocated (``limit``: a larger claimed size
raises ``FrameTooLarge``) and in time (``timeout``: a frame that has started must arrive
whole in time, else ``FrameStalled``). Both leave the stream out of step: close it. The
common case, a whole message in the kernel's buffer, still takes one read for the length
and one for the body, with no clock read and no other system call.

Packed objects (``pack``/``split``) pickle with protocol 5 and carry large buffers
(``pickle.PickleBuffer``) out of band, as their own parts: a megabyte argument is then
written from, and unpickled as a view into, the buffers it already lives in.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import time
from collections.abc import Sequence
from typing import Any

from taskq.defaults import FRAME_MIN_BYTES_PER_S

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


class FrameError(OSError):
    """A frame that cannot be read whole; the stream is out of step after it."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size  # the size the frame claimed (-1 while unknown)


class FrameTooLarge(FrameError):
    """A frame claims more bytes than the reader accepts (or a negative size)."""


class FrameStalled(FrameError):
    """A frame stopped arriving part-way."""


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


class _Rest:
    """The rest of a frame that did not arrive in one read, read against its deadline."""

    __slots__ = ("deadline", "fd", "size")

    def __init__(self, fd: int, timeout: float | None) -> None:
        self.fd = fd
        self.size = -1
        self.deadline = None if timeout is None else time.monotonic() + timeout

    def sized(self, size: int) -> None:
        """The frame's size is known: a large one is given time in proportion."""
        self.size = size
        if self.deadline is not None:
            self.deadline += size / FRAME_MIN_BYTES_PER_S

    def fill(self, view: memoryview, pos: int) -> None:
        while pos < len(view):
            pos += _read_some(self.fd, view[pos:], self.size)
            if self.deadline is not None and pos < len(view) \
                    and time.monotonic() > self.deadline:
                raise FrameStalled(f"{_what(self.size)} was still incomplete at its deadline",
                                   self.size)


def _read_some(fd: int, view: memoryview, size: int) -> int:
    """One read inside a started frame: some bytes, or FrameStalled / OSError."""
    try:
        n = os.readv(fd, [view])
    except BlockingIOError:  # the descriptor's own timeout passed with no byte
        raise FrameStalled(f"{_what(size)} stopped arriving", size) from None
    if n == 0:
        raise FrameError("got end of file during message", size)
    return n


def _what(size: int) -> str:
    return f"a frame of {size} bytes" if size >= 0 else "a frame's length"


def _claimed(fd: int, head: bytearray, rest: _Rest | None, timeout: float | None,
             ) -> tuple[int, _Rest | None]:
    """The size a frame's length prefix claims (reading the long form's 8 more bytes)."""
    (size,) = _LEN.unpack(head)
    if size == -1:
        rest = rest or _Rest(fd, timeout)
        long = bytearray(_LONG.size)
        rest.fill(memoryview(long), 0)
        (size,) = _LONG.unpack(long)
    return size, rest


def read_message(fd: int, limit: int | None = None,
                 timeout: float | None = None) -> bytearray:
    """Read one framed message.

    A claimed size over ``limit`` raises FrameTooLarge before anything is allocated. Each
    read waits as long as the descriptor lets it (SO_RCVTIMEO): that wait ending before the
    first byte raises BlockingIOError (no frame started, the stream is still in step), and
    in the middle of a frame FrameStalled. With ``timeout``, a frame that did not come in
    one read for its length and one for its body must be whole within ``timeout`` seconds
    plus one per FRAME_MIN_BYTES_PER_S of it, or FrameStalled.
    """
    head = bytearray(_LEN.size)
    got = os.readv(fd, [head])
    if got == 0:
        raise EOFError
    rest = None
    if got < _LEN.size:
        rest = _Rest(fd, timeout)
        rest.fill(memoryview(head), got)
    size, rest = _claimed(fd, head, rest, timeout)
    if size < 0 or (limit is not None and size > limit):
        raise FrameTooLarge(f"a frame claims {size} bytes; at most {limit} are accepted"
                            if size >= 0 else f"a frame claims a negative size ({size})", size)
    buf = bytearray(size)
    view, got = memoryview(buf), 0
    if rest is None:
        got = _read_some(fd, view, size) if size else 0
        if got == size:
            return buf  # the common case: the whole body in one read
        rest = _Rest(fd, timeout)
    rest.sized(size)
    rest.fill(view, got)
    return buf


def holds_frame(data: bytes) -> bool:
    """Do these bytes (peeked from a socket) begin with one whole frame of the short form?"""
    if len(data) < _LEN.size:
        return False
    size: int = _LEN.unpack_from(data)[0]
    return 0 <= size <= len(data) - _LEN.size


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
