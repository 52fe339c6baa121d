"""Usage errors of the `taskq` command: one line on stderr, exit code 2, no help panel."""

from __future__ import annotations

import pytest
from cluster import Cluster

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("args,needle", [
    (["master", "--no-such-flag"], "No such option: --no-such-flag"),
    (["master", "--port", "notaport"], "'--port'"),
    (["master", "--log-level", "loud"], "expected one of debug, info, warning, error"),
    (["worker", "--connect", "127.0.0.1:1", "--log-level", "LOUD"], "bad log level 'LOUD'"),
    (["worker", "--connect", "127.0.0.1:1", "--procs", "0"], "'--procs'"),
    (["submit"], "Missing argument"),
    (["submit", "no_colon"], "MODULE:FUNC"),
    (["results"], "Missing argument"),
    (["status", "--json", "extra"], "extra"),
    (["nonsense"], "No such command 'nonsense'"),
])
def test_usage_errors_are_one_line(cluster: Cluster, args: list[str], needle: str) -> None:
    out = cluster.cli(*args, env={**cluster.env, "TASKQ_ADDRESS": "127.0.0.1:1"})
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stdout == ""
    (line,) = out.stderr.splitlines()
    assert line.startswith("taskq: error: ") and needle in line, line
    assert f"`taskq {args[0]} --help`" in line or args == ["nonsense"]


def test_a_good_log_level_in_any_case_is_accepted(cluster: Cluster) -> None:
    out = cluster.cli("worker", "--connect", "127.0.0.1:1", "--connect-timeout", "0",
                      "--log-level", "WARNING")
    assert out.returncode == 1 and "could not connect" in out.stderr, out.stderr


def test_help_is_printed_and_exits_0(cluster: Cluster) -> None:
    out = cluster.cli("worker", "--help", env={**cluster.env, "COLUMNS": "250"})
    assert out.returncode == 0 and out.stderr == ""
    (procs,) = [line for line in out.stdout.splitlines() if "--procs" in line]
    assert "default: CPU count" in procs and "[default:" not in procs
