"""Figures the broker keeps about what it did: counters, wait and run time histograms per
queue, and one-minute windows for the dashboard's charts.

    submit ──► count("submitted", queue)                      ──► /metrics counters
    a task ends ──► count("finished", queue, outcome)              (journaled increments,
    an attempt ran ──► observe(queue, wait, run, wall) ──┬──► Histogram per queue  survive
                                                         └──► Window per minute   a restart)

Pure bookkeeping with no clock: callers pass wall times. Copies for readers are cheap (a
few lists of ints), so a scrape holds the broker's lock only for the copy; percentiles are
computed from the copies, outside it. After a restart the histograms come back from the
journal (their buckets are journaled as counters), and the windows are rebuilt from the
attempts of the journaled history (``History.replay_windows``; not the submissions).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, deque
from dataclasses import dataclass, field

from taskq.defaults import HIST_BUCKETS, STATS_WINDOWS

# Finer bounds for the dashboard's percentiles: 25 % steps from 0.5 ms to about 30 min.
FINE = tuple(0.0005 * 1.25 ** k for k in range(69))

CounterKey = tuple[str, str, str]  # (name, queue, outcome); outcome is "" for "submitted"

# The histograms are journaled beside the counters, as increments keyed (name, queue, bucket):
# a bucket is named by its upper bound ("0.005" ... "+Inf"), and "sum_us" holds the sum in
# microseconds (an integer, as every counter is). ``restore`` puts them back.
HIST_NAMES = ("wait_seconds", "run_seconds")
BUCKET_LABELS = (*map(str, HIST_BUCKETS), "+Inf")
SUM_LABEL = "sum_us"


@dataclass(slots=True)
class Histogram:
    """Counts per bucket (not cumulative; the last is +Inf), their sum and count."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(HIST_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(HIST_BUCKETS, value)] += 1
        self.total += value

    def copy(self) -> Histogram:
        return Histogram(list(self.counts), self.total)


@dataclass(slots=True)
class Window:
    """One minute of activity (``start`` is its wall time, a multiple of 60)."""

    start: float
    submitted: int = 0
    done: int = 0
    failed: int = 0
    wait: list[int] = field(default_factory=lambda: [0] * (len(FINE) + 1))
    run: list[int] = field(default_factory=lambda: [0] * (len(FINE) + 1))

    def copy(self) -> Window:
        return Window(self.start, self.submitted, self.done, self.failed, list(self.wait),
                      list(self.run))


class Stats:
    """See the module docstring."""

    def __init__(self) -> None:
        self.counters: Counter[CounterKey] = Counter()
        self.unjournaled: Counter[CounterKey] = Counter()
        self.wait: dict[str, Histogram] = {}
        self.run: dict[str, Histogram] = {}
        self.windows: deque[Window] = deque(maxlen=STATS_WINDOWS)

    def count(self, key: CounterKey, wall: float, n: int = 1) -> None:
        self.counters[key] += n
        self.unjournaled[key] += n
        window = self._window(wall)
        if key[0] == "submitted":
            window.submitted += n
        elif key[2] == "ok":
            window.done += n
        else:
            window.failed += n

    def restore(self, key: CounterKey, value: int) -> None:
        """Put back a journaled counter, or one bucket (or the sum) of a histogram."""
        name, queue, label = key
        if name not in HIST_NAMES:
            self.counters[key] = value
            return
        hist = _hist(self.wait if name == HIST_NAMES[0] else self.run, queue)
        if label == SUM_LABEL:
            hist.total = value / 1e6
        elif label in BUCKET_LABELS:  # a bucket bound since removed is dropped
            hist.counts[BUCKET_LABELS.index(label)] = value

    def observe(self, queue: str, wait: float | None, run: float | None, wall: float) -> None:
        window = self._window(wall)
        if wait is not None:
            self._observe(HIST_NAMES[0], self.wait, queue, wait)
            window.wait[bisect.bisect_left(FINE, wait)] += 1
        if run is not None:
            self._observe(HIST_NAMES[1], self.run, queue, run)
            window.run[bisect.bisect_left(FINE, run)] += 1

    def replay(self, wall: float, wait: float | None, run: float | None,
               outcome: str | None) -> None:
        """Count a journaled attempt in its minute's window again (after a restart; walls
        in order): its wait and run time, and ``outcome`` if it was the task's last."""
        window = self._window(wall)
        if wait is not None:
            window.wait[bisect.bisect_left(FINE, wait)] += 1
        if run is not None:
            window.run[bisect.bisect_left(FINE, run)] += 1
        if outcome == "ok":
            window.done += 1
        elif outcome is not None:
            window.failed += 1

    def _observe(self, name: str, table: dict[str, Histogram], queue: str,
                 value: float) -> None:
        _hist(table, queue).observe(value)
        bucket = BUCKET_LABELS[bisect.bisect_left(HIST_BUCKETS, value)]
        self.unjournaled[(name, queue, bucket)] += 1
        self.unjournaled[(name, queue, SUM_LABEL)] += round(value * 1e6)

    def drain(self) -> Counter[CounterKey]:
        out, self.unjournaled = self.unjournaled, Counter()
        return out

    def copy_windows(self) -> list[Window]:
        return [w.copy() for w in self.windows]

    def _window(self, wall: float) -> Window:
        start = math.floor(wall / 60.0) * 60.0
        if not self.windows or self.windows[-1].start < start:
            self.windows.append(Window(start))
        return self.windows[-1]  # a wall clock stepping back counts in the last window


def _hist(table: dict[str, Histogram], queue: str) -> Histogram:
    hist = table.get(queue)
    if hist is None:
        hist = table[queue] = Histogram()
    return hist


def percentile(counts: list[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of values counted in FINE bins: the bound of its bin."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(counts):
        seen += n
        if seen >= rank and n:
            return FINE[i] if i < len(FINE) else FINE[-1]
    return FINE[-1]
