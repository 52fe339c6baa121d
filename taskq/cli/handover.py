"""Knowing which lines the reader of a pipe took: ``taskq results`` removes a result from
the master only once the command reading its output has it.

A pipe's buffer takes about 64 KiB whatever its reader does, so a successful write says
nothing of what was read: ``taskq results J | head -3`` would fill the buffer and count
every line as written, though ``head`` printed three. Here the pipe is shrunk to one page,
which the kernel reports writable only once it is empty; each line is written alone and
counts as taken once the pipe is empty again::

    write one line ──► pipe (one page) ──► the reader reads it ──► poll: writable ──► taken
                                       └─► the reader exits ────► poll: error, bytes unread
                                                                  ──► not taken

Elsewhere (a file, a terminal, a system that cannot resize pipes) a line written is a line
taken, as before.
"""

from __future__ import annotations

import fcntl
import functools
import io
import os
import select
import stat
import struct
import termios
from collections.abc import Callable
from typing import TextIO

_WRITABLE, _GONE = select.POLLOUT, select.POLLERR | select.POLLHUP | select.POLLNVAL


def pipe_reader(stream: TextIO) -> Callable[[], bool] | None:
    """For a stream that is a pipe: a check that waits until its reader took all that was
    written to it (True) or left without it (False). None if the stream is no pipe, or
    the pipe cannot be shrunk to one page."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    try:
        fd = stream.fileno()
        if set_size is None or not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return None
        fcntl.fcntl(fd, set_size, os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, io.UnsupportedOperation):  # e.g. EBUSY: more than a page
        return None  # is in the pipe already
    return functools.partial(_taken, fd)


def _taken(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, _WRITABLE)
    while True:
        events = 0
        for _, mask in poller.poll():  # a signal's handler may raise here: the command stops
            events |= mask
        if events & _GONE:
            return _unread(fd) == 0  # it may have read the line, then left
        if events & _WRITABLE:
            return True


def _unread(fd: int) -> int:
    """Bytes in the pipe that no reader took."""
    try:
        got = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 1  # unknown: count it as not taken (it comes again: never lost)
    return int(struct.unpack("i", got)[0])
