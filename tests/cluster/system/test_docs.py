"""Every Python example of the README and of docs/ runs, in order, page by page, against a
real cluster: a master and a worker started as subprocesses on loopback with a random key.

The examples find that master as a user's program does, through TASKQ_ADDRESS and
TASKQ_AUTHKEY. Each page's examples share one namespace whose ``__name__`` is
``"__main__"``, as a user's script: the functions they define travel to the worker by value,
exactly as they would from that script. A block that cannot run here is preceded by
``<!-- skip: next -->`` and a comment saying why.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import ROOT, Cluster
from sybil import Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

import taskq
from taskq import defaults

PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
PYTHON_BLOCK = re.compile(r"^```python$", re.M)
SKIP = re.compile(r"^<!-- skip: next -->$", re.M)
# What the docs' worker declares, as their examples expect: the queues they route to and
# the resources they ask for.
WORKER_ARGS = ("--queues", "default,io,gpu", "--resources", "gpu=2,ram_gb=64")


def pages_with_examples() -> list[Path]:
    return [p for p in PAGES if PYTHON_BLOCK.search(p.read_text())]


def as_main(namespace: dict[str, object]) -> None:
    namespace["__name__"] = "__main__"


SYBIL = Sybil(parsers=[PythonCodeBlockParser(), SkipParser()], setup=as_main)


@pytest.fixture(scope="module")
def docs_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("docs"))
    try:
        cluster.start_master()
        cluster.start_worker(*WORKER_ARGS, procs=2)
        cluster.wait_workers(1)
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def master_env(docs_cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in [n for n in os.environ if n.startswith("TASKQ_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv(defaults.ENV_ADDRESS, docs_cluster.address)
    monkeypatch.setenv(defaults.ENV_AUTHKEY, docs_cluster.authkey)
    try:
        yield
    finally:  # the process-wide client of taskq.submit, if an example made it
        client, taskq._default = taskq._default, None
        if client is not None:
            client.shutdown(wait=True)


@pytest.mark.parametrize("page", pages_with_examples(),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_run(page: Path, master_env: None) -> None:
    for example in SYBIL.parse(page).examples():
        example.evaluate()


def test_every_page_is_checked() -> None:
    """The count of examples and skips, so a parser change cannot silently run nothing."""
    blocks = sum(len(PYTHON_BLOCK.findall(p.read_text())) for p in PAGES)
    skipped = sum(len(SKIP.findall(p.read_text())) for p in PAGES)
    parsed = sum(1 for p in PAGES for e in SYBIL.parse(p).examples()
                 if isinstance(e.region.evaluator, PythonEvaluator))
    assert parsed == blocks
    assert blocks >= 15
    assert skipped * 4 <= blocks, f"{skipped} of {blocks} examples are skipped"
