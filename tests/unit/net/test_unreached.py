"""What a peer says when no master could be reached (``taskq.net.link.unreached``)."""

from __future__ import annotations

import errno
import socket

import pytest

from taskq.errors import ConnectError
from taskq.net.link import unreached


@pytest.mark.parametrize("exc,says", [
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "nothing listens"),
    (BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable"), "said nothing"),
    (EOFError(), "closed the connection"),
    (ConnectionResetError(errno.ECONNRESET, "reset"), "closed the connection"),
    (OSError("bad message length"), "answered in another protocol"),
    (TimeoutError("timed out"), "could not reach h:5000 (timed out)"),
    (OSError(errno.EHOSTUNREACH, "No route to host"), "could not reach h:5000"),
    (socket.gaierror(-2, "Name or service not known"), "check the host name"),
])
def test_each_failure_names_the_address_and_what_to_check(exc: BaseException,
                                                          says: str) -> None:
    text = unreached("h:5000", 0.999994, exc)
    assert says in text and "h:5000" in text and "(tried for 1 s)" in text
    assert "Errno 11" not in text and "\n" not in text


def test_a_single_attempt_says_no_duration_and_a_refusal_is_told_as_it_came() -> None:
    assert "tried" not in unreached("h:5000", 0.0, EOFError())
    refused = ConnectError("the master at h:5000 refused: too many peers")
    assert unreached("h:5000", 3.0, refused) == str(refused)
