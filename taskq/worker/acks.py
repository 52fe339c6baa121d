"""The results a worker reported that the master has not journaled yet.

The master answers a report at once with a ``Receipt``; its results are durable once the
journal commits the receipt's ticket. The worker keeps them until a later receipt of the
same master run says so (the next report's, or, when none comes, one it asks for), and
reports them again, marked re-sent, when it joins a master of another run: a master
SIGKILLed before its commit then still gets every result it acknowledged::

    report(results) ──► Receipt(epoch, ticket, durable) ──► keep(receipt, results)
    any later Receipt of that epoch with durable >= ticket ──► forgotten
    join a master of another epoch ──► resend(): report(results, resent=True)

A master without a journal answers ticket 0: nothing is kept.
"""

from __future__ import annotations

import threading

from taskq import defaults
from taskq.protocol.messages import ResultMsg
from taskq.protocol.replies import Receipt


def by_size(results: list[ResultMsg]) -> list[list[ResultMsg]]:
    """Results in reports of about BATCH_BYTES of bodies each (each under the frame cap)."""
    chunks: list[list[ResultMsg]] = []
    size = 0
    for result in results:
        body = len(result.body or b"")
        if not chunks or (size + body > defaults.BATCH_BYTES and chunks[-1]):
            chunks.append([])
            size = 0
        chunks[-1].append(result)
        size += body
    return chunks


class Unacked:
    """Results by (master run, journal ticket), until the journal has them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, int], list[ResultMsg]] = {}

    def keep(self, receipt: Receipt, results: list[ResultMsg]) -> None:
        """Note a receipt: keep these results if not durable yet, forget what now is."""
        with self._lock:
            if results and receipt.ticket:
                self._kept.setdefault((receipt.epoch, receipt.ticket), []).extend(results)
            if self._kept:
                for key in [k for k in self._kept
                            if k[0] == receipt.epoch and k[1] <= receipt.durable]:
                    del self._kept[key]

    def waiting_for(self, epoch: str) -> int:
        """The highest ticket of ``epoch`` still kept (0: none)."""
        with self._lock:
            return max((t for e, t in self._kept if e == epoch), default=0)

    def resend(self, epoch: str) -> list[ResultMsg]:
        """Take out the results a master of another run than ``epoch`` took."""
        with self._lock:
            old = [key for key in self._kept if key[0] != epoch]
            return [r for key in old for r in self._kept.pop(key)]

    def __len__(self) -> int:
        with self._lock:
            return sum(len(results) for results in self._kept.values())
