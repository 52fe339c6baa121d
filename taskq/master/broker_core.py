"""What every part of the broker shares, declared once: ``taskq.master.broker.Broker`` sets it
up, and its groups of calls (``broker_workers``, ``broker_controls``, ``broker_replay``,
``broker_views``, ``broker_prims``) build on it.

    Broker(state, journal) ── _lock ── BrokerState ── _commit() ──► Journal (a ticket)
                              signals the parked calls wait on: _takers (polls), _space
                              (room to submit), _results, _answers, _synced (committed)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from taskq.master.journal import Journal
from taskq.master.state import BrokerState
from taskq.master.takers import Takers
from taskq.net import serving
from taskq.protocol.replies import Receipt


class BrokerCore:
    """The broker's shared parts (set by ``Broker.__init__``) and plumbing (its methods)."""

    _lock: threading.Lock
    _state: BrokerState
    _clock: Callable[[], float]
    _journal: Journal | None
    _takers: Takers
    _space: serving.Signal
    _results: serving.Signal
    _answers: serving.Signal
    _synced: serving.Signal
    _stopping: threading.Event
    _started: float
    epoch: str  # this master run
    # Broker's plumbing: journal what the call changed (its ticket), a worker's receipt of a
    # ticket, a bounded wait (parked where the loop serves the call), the reaper's timer
    _commit: Callable[..., int]
    _receipt: Callable[[int], Receipt]
    _wait: Callable[..., Any]
    _wake_timer: Callable[[], None]
