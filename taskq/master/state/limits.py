"""Rate and concurrency limits, kept by the master: per queue, and per limit key.

Pure (every call takes ``now``). A queue may have a rate (a token bucket: ``rate`` tokens a
second, holding at most one second's worth, each lease takes one) and a concurrency (at
most that many of its tasks leased at once). A task with ``limit_key``/``limit`` runs only
while fewer than ``limit`` tasks with that key are leased, cluster-wide::

    lease ── gate.queue_open(q)? gate.key_open(k, limit)? ──► taken(rec): counts +1, token -1
    end / requeue / lost ──► released(rec): counts -1

``taskq.master.state.queues`` asks the gate for each heap, so a limited queue or key never blocks
the tasks behind it that are not limited.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from taskq.master.state.records import TaskRecord


@dataclass(slots=True)
class QueueLimit:
    """A queue's limits; 0 means none."""

    rate: float = 0.0  # tasks a second
    concurrency: int = 0  # tasks leased at once

    def check(self) -> None:
        if self.rate < 0 or self.concurrency < 0:
            raise ValueError(f"a queue's rate and concurrency must be 0 (no limit) or more, "
                             f"not {self.rate!r} and {self.concurrency!r}")


class Limits:
    """Every limit and what it counts; the gate ``TaskQueues.pop_best`` consults."""

    def __init__(self) -> None:
        self.by_queue: dict[str, QueueLimit] = {}
        self.running_by_queue: Counter[str] = Counter()
        self.running_by_key: Counter[str] = Counter()
        self._tokens: dict[str, tuple[float, float]] = {}  # queue -> (tokens, at)
        self.now = 0.0  # the time the gate answers for (set by the state before a lease)
        self.changed: list[tuple[str, QueueLimit | None]] = []  # for the journal
        self.paused: set[str] = set()  # queues that lease nothing (state.controls)

    def set(self, queue: str, limit: QueueLimit | None) -> None:
        """Set (or with None, clear) a queue's limits."""
        if limit is None or (not limit.rate and not limit.concurrency):
            self.by_queue.pop(queue, None)
            limit = None
        else:
            limit.check()
            self.by_queue[queue] = limit
        self._tokens.pop(queue, None)
        self.changed.append((queue, limit))

    def restore(self, queue: str, limit: QueueLimit) -> None:
        self.by_queue[queue] = limit

    # ------------------------------------------------------------------ the gate

    def queue_open(self, queue: str) -> bool:
        if queue in self.paused:
            return False
        limit = self.by_queue.get(queue)
        if limit is None:
            return True
        if limit.concurrency and self.running_by_queue[queue] >= limit.concurrency:
            return False
        return not limit.rate or self._refill(queue, limit.rate) >= 1.0

    def key_open(self, key: str, limit: int) -> bool:
        return self.running_by_key[key] < max(limit, 1)

    def _refill(self, queue: str, rate: float) -> float:
        tokens, at = self._tokens.get(queue, (max(rate, 1.0), self.now))
        tokens = min(max(rate, 1.0), tokens + (self.now - at) * rate)
        self._tokens[queue] = (tokens, self.now)
        return tokens

    # ------------------------------------------------------------------ counting

    def taken(self, rec: TaskRecord) -> None:
        """A task was leased: it counts against its queue and key, and takes a token."""
        options = rec.msg.options
        self.running_by_queue[options.queue] += 1
        if options.limit_key:
            self.running_by_key[options.limit_key] += 1
        limit = self.by_queue.get(options.queue)
        if limit is not None and limit.rate:
            tokens = self._refill(options.queue, limit.rate)
            self._tokens[options.queue] = (tokens - 1.0, self.now)

    def released(self, rec: TaskRecord) -> None:
        """A leased task ended or went back to waiting."""
        options = rec.msg.options
        self.running_by_queue[options.queue] -= 1
        if options.limit_key:
            self.running_by_key[options.limit_key] -= 1
            if not self.running_by_key[options.limit_key]:
                del self.running_by_key[options.limit_key]

    def next_token(self, queues: tuple[str, ...], now: float) -> float | None:
        """When a rate-limited queue among ``queues`` next has a token (None: none waits)."""
        times = []
        for queue in queues:
            limit = self.by_queue.get(queue)
            if limit is not None and limit.rate:
                self.now = now
                tokens = self._refill(queue, limit.rate)
                times.append(now + max(0.0, (1.0 - tokens) / limit.rate))
        return min(times) if times else None

    def drain(self) -> list[tuple[str, QueueLimit | None]]:
        changed, self.changed = self.changed, []
        return changed
