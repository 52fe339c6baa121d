"""``submit`` is typed with the submitted function's parameters and result: mypy (run here
through its API, on tests/fixtures/typed_submit.py) gives ``client.submit(f, 1)`` the type
``TaskFuture[R]`` of ``def f(x: int) -> R`` (``R`` once awaited, for an ``async def``), and
reports a call whose arguments do not fit the function."""

from __future__ import annotations

import re

import pytest
from cluster import ROOT

mypy_api = pytest.importorskip("mypy.api")

EXAMPLE = ROOT / "tests" / "fixtures" / "typed_submit.py"
FUTURE = "taskq.client.future.TaskFuture"


@pytest.fixture(scope="module")
def mypy_says() -> dict[str, str]:
    """What mypy says of each marked line of the example: ``{"R1": "...", "E1": "..."}``."""
    out, err, _ = mypy_api.run(["--config-file", str(ROOT / "pyproject.toml"),
                                "--no-error-summary", "--show-error-codes", str(EXAMPLE)])
    assert not err, err
    marks = {n + 1: m.group(1) for n, line in enumerate(EXAMPLE.read_text().splitlines())
             if (m := re.search(r"# ([RE]\d+)$", line))}
    said: dict[str, str] = {}
    for line in out.splitlines():
        where = re.match(rf".*{EXAMPLE.name}:(\d+): (.*)", line)
        if where and int(where.group(1)) in marks:
            said.setdefault(marks[int(where.group(1))], where.group(2))  # its first word
    return said


@pytest.mark.parametrize(("mark", "revealed"), [
    ("R1", f"{FUTURE}[int]"),
    ("R2", "int"),
    ("R3", f"{FUTURE}[bytes]"),  # an async def: what it returns once awaited
    ("R4", f"{FUTURE}[str]"),  # through @taskq.task
    ("R5", f"{FUTURE}[int]"),  # taskq.submit
    ("R6", "_asyncio.Future[int]"),
    ("R7", "bytes"),
])
def test_the_future_has_the_functions_result_type(mypy_says: dict[str, str], mark: str,
                                                  revealed: str) -> None:
    assert mypy_says.get(mark) == f'note: Revealed type is "{revealed}"', mypy_says


ADD = '"Callable[[int, int], int]"'


@pytest.mark.parametrize(("mark", "error"), [
    ("E1", f'"submit" of "Client" matches argument types {ADD}, "str", "int"  '
           f'[call-overload]'),
    ("E2", f'"submit" of "Client" matches argument types {ADD}, "int"  [call-overload]'),
    ("E3", 'Unexpected keyword argument "tries" for "submit" of "Client"'),
    ("E4", '"submit" of "Client" matches argument types "TaskFunction[[float], str]", '
           '"str"  [call-overload]'),
    ("E5", f'"submit" of "AsyncClient" matches argument types {ADD}, "int", "str"  '
           f'[call-overload]'),
])
def test_arguments_that_do_not_fit_the_function_are_errors(mypy_says: dict[str, str],
                                                           mark: str, error: str) -> None:
    said = mypy_says.get(mark, "")
    assert said.startswith("error:") and error in said, said


def test_the_example_has_no_other_error(mypy_says: dict[str, str]) -> None:
    out, _, code = mypy_api.run(["--config-file", str(ROOT / "pyproject.toml"),
                                 str(EXAMPLE)])
    assert code == 1 and out.strip().endswith("Found 5 errors in 1 file (checked 1 source "
                                              "file)"), out
