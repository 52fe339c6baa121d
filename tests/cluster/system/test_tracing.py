"""Tracing with OpenTelemetry, end to end with real processes: a client that traces (an SDK
tracer provider with an in-memory exporter, in a process of its own) and a worker
subprocess that sets up the SDK from ``OTEL_TRACES_EXPORTER=console``. The worker's span
of each task is a child of the client's submit span; a failure is an ERROR with its
exception; a retry links to the attempt before it, a dependent's submit to its
dependency's. Without tracing nothing of OpenTelemetry is loaded anywhere."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster import Cluster, wait_for

pytestmark = pytest.mark.timeout(180)

CLIENT = '''
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import taskq, trace_tasks

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

with taskq.Client() as client:
    ok = client.submit(trace_tasks.double, 21)
    bad = client.submit(trace_tasks.fails, "the disk is full")
    flaky = client.submit(taskq.task(trace_tasks.fails_first_time, retries=1))
    seen = client.submit(trace_tasks.current_span)
    first = client.submit(trace_tasks.double, 1)
    then = client.submit(trace_tasks.double, first)
    futures = {"ok": ok, "bad": bad, "flaky": flaky, "seen": seen, "first": first,
               "then": then}
    results = {}
    for name, future in futures.items():
        exc = future.exception(60)
        results[name] = [future.task_id, repr(exc) if exc else future.result()]
spans = [json.loads(s.to_json()) for s in exporter.get_finished_spans()]
print(json.dumps({"results": results, "spans": spans}))
'''

UNTRACED_CLIENT = '''
import json, sys

class NoOpenTelemetry:
    """As if the extra were not installed; and it records any attempt to import it."""
    asked = []
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            self.asked.append(name)
            raise ImportError(f"no {name} here")
        return None

sys.meta_path.insert(0, NoOpenTelemetry())
import taskq, trace_tasks

with taskq.Client() as client:
    loaded = [client.submit(trace_tasks.opentelemetry_loaded).result(60) for _ in range(3)]
    doubled = client.submit(trace_tasks.double, 4).result(60)
mine = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
print(json.dumps({"asked": NoOpenTelemetry.asked, "client": mine, "tasks": loaded,
                  "doubled": doubled}))
'''


def run_client(cluster: Cluster, script: str, *argv: str) -> dict[str, Any]:
    env = {**cluster.env, "TASKQ_ADDRESS": cluster.address}
    out = subprocess.run([sys.executable, "-c", script, *argv], env=env, text=True,
                         capture_output=True, timeout=120, cwd=cluster.tmp)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def console_spans(path: Path) -> list[dict[str, Any]]:
    """The spans the console exporter wrote (JSON objects one after another)."""
    text, decoder, spans, pos = path.read_text(), json.JSONDecoder(), [], 0
    while (start := text.find("{", pos)) >= 0:
        try:
            span, pos = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            break  # a span still being written
        spans.append(span)
    return spans


def start_traced_worker(cluster: Cluster, out: Path, *extra: str) -> None:
    env = {**cluster.env, "OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "50",
           "OTEL_SERVICE_NAME": "taskq-worker"}
    with out.open("w") as fh:
        cluster.spawn(["worker", "--connect", cluster.address, "--procs", "2", *extra],
                      env=env, stdout=fh.fileno())


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One run: the client's results and spans, and the worker's spans by task id."""
    cluster = Cluster(tmp_path_factory.mktemp("tracing"))
    out = cluster.tmp / "worker-spans.json"
    try:
        cluster.start_master()
        start_traced_worker(cluster, out)
        cluster.wait_workers(1)
        worker_id = cluster.status()["workers"][0]["worker_id"]
        ran = run_client(cluster, CLIENT)
        ids = {task_id for task_id, _ in ran["results"].values()}

        def all_spans() -> object:
            spans = console_spans(out)
            done = {s["attributes"].get("taskq.task.id") for s in spans}
            return spans if ids <= done and len(spans) >= len(ids) + 1 else None

        spans: Any = wait_for(all_spans, 30, "the worker's spans of every task")
    finally:
        cluster.close()
    by_task: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_task.setdefault(span["attributes"]["taskq.task.id"], []).append(span)
    submits = {s["attributes"]["taskq.task.id"]: s for s in ran["spans"]}
    yield {"results": ran["results"], "submits": submits, "worker": by_task,
           "worker_id": worker_id}


def one(traced: dict[str, Any], name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The submit span and the (only) worker span of a task."""
    task_id = traced["results"][name][0]
    (span,) = traced["worker"][task_id]
    return traced["submits"][task_id], span


def test_the_workers_span_is_a_child_of_the_submit_span(traced: dict[str, Any]) -> None:
    submit, run = one(traced, "ok")
    assert traced["results"]["ok"][1] == 42
    assert submit["kind"] == "SpanKind.PRODUCER" and run["kind"] == "SpanKind.CONSUMER"
    assert run["context"]["trace_id"] == submit["context"]["trace_id"]
    assert run["parent_id"] == submit["context"]["span_id"]
    task_id = traced["results"]["ok"][0]
    attributes = run["attributes"]
    assert attributes["taskq.task.id"] == task_id
    assert attributes["taskq.queue"] == "default"
    assert attributes["taskq.attempt"] == 0
    assert attributes["taskq.worker.id"] == traced["worker_id"]  # as taskq status shows it
    assert attributes["taskq.pool"] == "processes"
    assert attributes["taskq.outcome"] == "ok"
    assert attributes["messaging.system"] == "taskq"
    assert run["status"]["status_code"] == "UNSET"
    assert run["resource"]["attributes"]["service.name"] == "taskq-worker"


def test_a_failed_task_is_an_error_with_its_exception(traced: dict[str, Any]) -> None:
    submit, run = one(traced, "bad")
    assert "the disk is full" in traced["results"]["bad"][1]
    assert run["parent_id"] == submit["context"]["span_id"]
    assert run["attributes"]["taskq.outcome"] == "error"
    assert run["status"]["status_code"] == "ERROR"
    assert run["status"]["description"] == "ValueError: the disk is full"
    (event,) = [e for e in run["events"] if e["name"] == "exception"]
    assert event["attributes"]["exception.type"] == "ValueError"
    assert event["attributes"]["exception.message"] == "the disk is full"
    assert "trace_tasks.py" in event["attributes"]["exception.stacktrace"]


def test_a_retry_links_to_the_attempt_before_it(traced: dict[str, Any]) -> None:
    task_id, value = traced["results"]["flaky"]
    assert value == "second attempt"
    first, second = sorted(traced["worker"][task_id],
                           key=lambda s: s["attributes"]["taskq.attempt"])
    assert [s["attributes"]["taskq.attempt"] for s in (first, second)] == [0, 1]
    assert first["status"]["status_code"] == "ERROR"
    assert second["attributes"]["taskq.outcome"] == "ok"
    submit = traced["submits"][task_id]
    assert first["parent_id"] == second["parent_id"] == submit["context"]["span_id"]
    assert [link["context"]["span_id"] for link in second["links"]] == \
        [first["context"]["span_id"]]
    assert first["links"] == []


def test_a_dependents_submit_span_links_to_its_dependencys(traced: dict[str, Any]) -> None:
    assert traced["results"]["then"][1] == 4
    first, _ = one(traced, "first")
    then, _ = one(traced, "then")
    assert [link["context"]["span_id"] for link in then["links"]] == \
        [first["context"]["span_id"]]


def test_the_span_is_current_where_the_task_runs(traced: dict[str, Any]) -> None:
    """In the pool process: spans the task makes there are children of the worker's."""
    _, run = one(traced, "seen")
    trace_id, span_id = traced["results"]["seen"][1]
    assert (trace_id, span_id) == (run["context"]["trace_id"], run["context"]["span_id"])


@pytest.mark.parametrize("pool", ["processes", "threads"])
def test_nothing_of_opentelemetry_loads_when_nothing_traces(cluster: Cluster,
                                                              pool: str) -> None:
    cluster.start_master()
    cluster.start_worker("--pool", pool)
    cluster.wait_workers(1)
    ran = run_client(cluster, UNTRACED_CLIENT)
    assert ran["doubled"] == 8
    assert ran["asked"] == [] and ran["client"] == []  # not even tried
    assert ran["tasks"] == [[], [], []]  # nor where the tasks ran (the worker's own, threads)


SPAN_CLIENT = CLIENT.split("with taskq.Client()")[0] + '''
with taskq.Client() as client:
    fn = trace_tasks.current_span_async if sys.argv[1] == "asyncio" else trace_tasks.current_span
    seen = client.submit(fn)
    results = {"seen": [seen.task_id, seen.result(60)]}
spans = [json.loads(s.to_json()) for s in exporter.get_finished_spans()]
print(json.dumps({"results": results, "spans": spans}))
'''


@pytest.mark.parametrize("pool", ["threads", "asyncio"])
def test_the_span_is_current_in_the_threads_and_asyncio_pools(cluster: Cluster,
                                                               pool: str) -> None:
    cluster.start_master()
    out = cluster.tmp / "worker-spans.json"
    start_traced_worker(cluster, out, "--pool", pool)
    cluster.wait_workers(1)
    ran = run_client(cluster, SPAN_CLIENT, pool)
    task_id, (trace_id, span_id) = ran["results"]["seen"]
    (submit,) = ran["spans"]
    (run,) = wait_for(lambda: [s for s in console_spans(out)
                               if s["attributes"]["taskq.task.id"] == task_id], 30,
                      "the task's span")
    assert run["parent_id"] == submit["context"]["span_id"]
    assert (trace_id, span_id) == (run["context"]["trace_id"], run["context"]["span_id"])
    assert run["attributes"]["taskq.pool"] == pool


@pytest.mark.parametrize("role", ["master", "worker"])
def test_an_exporter_that_is_not_installed_is_one_line(cluster: Cluster, role: str) -> None:
    env = {**cluster.env, "OTEL_TRACES_EXPORTER": "otlp"}
    if role == "master":
        proc = cluster.spawn(["master", "--host", "127.0.0.1", "--port", "0", "--in-memory",
                              "--log-level", "warning"], env=env)
        wait_for(lambda: "tracing is off" in proc.stderr(), 30, "the master's warning")
    else:
        cluster.start_master()
        proc = cluster.spawn(["worker", "--connect", cluster.address, "--log-level",
                              "warning"], env=env)
        cluster.wait_workers(1)  # it runs, untraced
    (line,) = [ln for ln in proc.stderr().splitlines() if "OTEL" in ln]
    assert line.startswith("taskq: warning: OTEL_TRACES_EXPORTER=otlp: ")
    assert line.endswith("(pip install opentelemetry-exporter-otlp); tracing is off"), line
    assert proc.popen.poll() is None  # and it runs on


RETRIED_CLIENT = CLIENT.split("with taskq.Client()")[0] + '''
with taskq.Client() as client:
    flaky = client.submit(taskq.task(trace_tasks.fails_first_time, retries=1, backoff=3,
                                     jitter=False))
    results = {"flaky": [flaky.task_id, flaky.result(120)]}
spans = [json.loads(s.to_json()) for s in exporter.get_finished_spans()]
print(json.dumps({"results": results, "spans": spans}))
'''


def test_a_retry_links_to_its_attempt_before_across_a_killed_master(cluster: Cluster) -> None:
    """The earlier attempt's span is journaled with the task: a master SIGKILLed while the
    retry waits comes back with it."""
    journal = cluster.tmp / "journal.db"
    master = cluster.start_master("--state", str(journal))
    port = int(cluster.address.rsplit(":", 1)[1])
    out = cluster.tmp / "worker-spans.json"
    start_traced_worker(cluster, out)
    cluster.wait_workers(1)
    env = {**cluster.env, "TASKQ_ADDRESS": cluster.address}
    client = subprocess.Popen([sys.executable, "-c", RETRIED_CLIENT], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cluster.tmp)
    try:
        wait_for(lambda: [s for s in console_spans(out)
                          if s["attributes"].get("taskq.outcome") == "error"], 60,
                 "the first attempt's span")
        master.signal_group(signal.SIGKILL)  # the retry waits its 3 s backoff meanwhile
        master.wait(30)
        cluster.start_master("--state", str(journal), port=port)
        stdout, stderr = client.communicate(timeout=120)
    finally:
        if client.poll() is None:
            client.kill()
            client.communicate()
    assert client.returncode == 0, stderr[-3000:]
    ran = json.loads(stdout.strip().splitlines()[-1])
    task_id, value = ran["results"]["flaky"]
    assert value == "second attempt"
    (submit,) = ran["spans"]

    def both() -> object:
        spans = [s for s in console_spans(out) if s["attributes"]["taskq.task.id"] == task_id]
        return spans if len(spans) == 2 else None

    spans: Any = wait_for(both, 30, "the second attempt's span")
    first, second = sorted(spans, key=lambda s: s["attributes"]["taskq.attempt"])
    assert first["parent_id"] == second["parent_id"] == submit["context"]["span_id"]
    assert [link["context"]["span_id"] for link in second["links"]] == \
        [first["context"]["span_id"]]
