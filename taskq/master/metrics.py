"""Prometheus metrics of a master, made with ``prometheus_client`` from one broker snapshot.

    scrape ──► MasterCollector.collect() ──► Broker.metrics() (copies under the lock)
                                          └─► metric families ──► generate_latest()

Counters are the broker's own (journaled: they go on counting after a restart); gauges
and histograms are read from the same snapshot, so one scrape is consistent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from taskq.defaults import HIST_BUCKETS
from taskq.master.state.stats import Histogram

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Snapshots(Protocol):
    def metrics(self) -> dict[str, Any]: ...


class MasterCollector(Collector):
    """Every taskq metric, from one ``metrics()`` snapshot per scrape."""

    def __init__(self, broker: Snapshots) -> None:
        self._broker = broker

    def collect(self) -> Iterator[Metric]:
        snap = self._broker.metrics()
        yield from _counters(snap["counters"])
        depth = GaugeMetricFamily("taskq_queue_depth", "Tasks queued, not yet leased.",
                                  labels=["queue"])
        running = GaugeMetricFamily("taskq_tasks_running",
                                    "Tasks leased to a worker, not yet ended.", labels=["queue"])
        desired = GaugeMetricFamily(
            "taskq_desired_workers", "Workers that would run every task of the queue that "
            "could run now (queued or leased, within its limits), at the size of the last "
            "worker that served it: the autoscaling target.", labels=["queue"])
        paused = GaugeMetricFamily("taskq_queue_paused", "1 while the queue is paused "
                                   "(taskq queue pause): it leases nothing.", labels=["queue"])
        for queue in sorted({*snap["depth"], *snap["running"], *snap["desired"],
                             *snap.get("paused", ())}):
            depth.add_metric([queue], snap["depth"].get(queue, 0))
            running.add_metric([queue], snap["running"].get(queue, 0))
            desired.add_metric([queue], snap["desired"].get(queue, 0))
            paused.add_metric([queue], int(queue in snap.get("paused", ())))
        yield depth
        yield running
        yield desired
        yield paused
        workers = GaugeMetricFamily("taskq_workers", "Workers by state (lost: last 15 min).",
                                    labels=["state"])
        for state, n in snap["workers"].items():
            workers.add_metric([state], n)
        yield workers
        yield from _kept(snap["kept"])
        yield _histograms("taskq_task_wait_seconds", "Time tasks waited in the queue.",
                          snap["wait"])
        yield _histograms("taskq_task_run_seconds", "Time tasks ran on a worker.", snap["run"])
        commit = HistogramMetricFamily("taskq_journal_commit_seconds",
                                       "Time each journal transaction took.")
        if snap["commit"] is not None:
            commit.add_metric([], _buckets(snap["commit"]), snap["commit"].total)
        yield commit


def _counters(counters: dict[tuple[str, str, str], int]) -> Iterator[Metric]:
    submitted = CounterMetricFamily("taskq_tasks_submitted", "Tasks submitted.",
                                    labels=["queue"])
    finished = CounterMetricFamily("taskq_tasks_finished", "Tasks that ended, by outcome.",
                                   labels=["queue", "outcome"])
    for (name, queue, outcome), value in sorted(counters.items()):
        if name == "submitted":
            submitted.add_metric([queue], value)
        else:
            finished.add_metric([queue, outcome], value)
    yield submitted
    yield finished


def _kept(kept: dict[str, int]) -> Iterator[Metric]:
    yield GaugeMetricFamily("taskq_kept_results", "Results kept by id for their result_ttl.",
                            value=kept["results"])
    yield GaugeMetricFamily("taskq_kept_result_bytes",
                            "Bytes of the results kept by id (their pickled bodies).",
                            value=kept["bytes"])


def _histograms(name: str, doc: str, table: dict[str, Histogram]) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=["queue"])
    for queue, hist in sorted(table.items()):
        family.add_metric([queue], _buckets(hist), hist.total)
    return family


def _buckets(hist: Histogram) -> list[tuple[str, float]]:
    out, seen = [], 0
    for bound, n in zip([*map(str, HIST_BUCKETS), "+Inf"], hist.counts, strict=True):
        seen += n
        out.append((bound, float(seen)))
    return out


def registry_for(broker: Snapshots) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MasterCollector(broker))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
