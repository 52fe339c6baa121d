"""``taskq submit``, ``taskq results``, ``taskq status`` and ``taskq demo``: the commands that
use a cluster rather than run one (they join the ``taskq`` command as this is imported).

    taskq submit MODULE:FUNC ARGS --job NAME ──► taskq.client.jobs.submit ──► "job NAME task ID"
    taskq submit MODULE:FUNC --batch FILE ──► a task a line, one link ──► a line per task
    taskq results NAME [--wait] ──► taskq.client.jobs.collect ──► one line per result on stdout;
        each acknowledged once written (on a pipe: once its reader took it,
        ``taskq.cli.handover``); a signal or a closed stdout leaves the rest waiting;
        --peek acknowledges none
    taskq status ──► Remote.status + monitor   (--job NAME: taskq.cli.tasks.job_status)
    taskq demo ──► taskq.cli.demo.run (a job on a local cluster of its own)
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Annotated, Any, TextIO

import typer

from taskq.cli.common import MasterOpts, duration, reaches_master, user_errors
from taskq.client import jobs
from taskq.protocol.api import BrokerAPI
from taskq.protocol.messages import TaskOptions
from taskq.protocol.options import make_options, parse_duration, parse_when, start_time


@reaches_master
def submit(
    target: Annotated[str, typer.Argument(help="The function to run, as MODULE:FUNC.")],
    args: Annotated[list[str] | None, typer.Argument(
        help="Arguments; each is a JSON literal where it is one, else a string.")] = None,
    job: Annotated[str | None, typer.Option(help="Job name to collect results by.")] = None,
    timeout: Annotated[float | None, typer.Option(min=0.001, help="Hard limit, seconds.")]
    = None,
    retries: Annotated[int, typer.Option(min=0, help="Re-runs if the task raises.")] = 0,
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    queue: Annotated[str, typer.Option(help="Queue to put the task on.")] = "default",
    backoff: Annotated[float, typer.Option(
        min=0, help="Seconds before the first retry, doubling for each next one.")] = 0.0,
    start_in: Annotated[str | None, typer.Option(
        "--in", help="Start no sooner than this from now: 30s, 10m, '10 minutes', 1h30m, "
        "2d.")] = None,
    start_at: Annotated[str | None, typer.Option(
        "--at", help="Start no sooner than this ISO 8601 time with its offset, e.g. "
                     "2026-12-01T02:00+01:00.")] = None,
    expires: Annotated[str | None, typer.Option(
        help="Never run it unless it starts within this long of the submit (a retry too): "
             "30s, 10m, or seconds; it then ends expired.")] = None,
    soft_timeout: Annotated[float | None, typer.Option(
        help="Raise taskq.SoftTimeout inside the task after this many seconds (less than "
             "--timeout).")] = None,
    result_ttl: Annotated[str | None, typer.Option(
        help="Keep each result this long after its task ended, readable by id (`taskq result "
        "ID`) however often it is fetched: e.g. 1h, 30m (default: the master's "
        "--result-ttl).")] = None,
    batch: Annotated[typer.FileText | None, typer.Option(
        "--batch", help="Submit one task per line of this file (- for stdin), each line's "
        "arguments split as a shell would; blank lines and # comments are skipped.")] = None,
    *,
    master: MasterOpts,
) -> None:
    """Submit one task (or, with --batch, one per line, over one connection); each result
    waits on the master for `taskq results JOB`."""
    try:
        jobs.parse_target(target)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="TARGET") from None
    options = _submit_options(timeout, retries, priority, queue, backoff, start_in, start_at)
    options.expires, options.soft_timeout = _limits(options, expires, soft_timeout)
    if result_ttl is not None:
        options.result_ttl = duration(result_ttl, "--result-ttl", positive=False)
    _no_stray_unit(start_in, args or [])
    if batch is not None and args:
        raise typer.BadParameter("give arguments on the command line or in --batch, not both",
                                 param_hint="--batch")
    arg_lists = [args or []] if batch is None else batch_lines(batch)
    with user_errors():
        name = job or jobs.new_job_name()
        link = master.link()
        try:
            task_ids = jobs.submit_many(link.remote, name, target, arg_lists, options)
        finally:
            link.close()
        for task_id in task_ids:
            typer.echo(f"job {name} task {task_id}")


def batch_lines(stream: TextIO) -> list[list[str]]:
    """The arguments of each task of ``--batch``: a line each, split as a shell would (a
    usage error naming the first bad line; nothing is submitted then)."""
    arg_lists = []
    for number, line in enumerate(stream, 1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise typer.BadParameter(f"line {number}: {exc}: {line.strip()}",
                                     param_hint="--batch") from None
        if words:
            arg_lists.append(words)
    if not arg_lists:
        raise typer.BadParameter("no tasks: every line is blank or a comment",
                                 param_hint="--batch")
    return arg_lists


def _limits(options: TaskOptions, expires: str | None, soft_timeout: float | None,
            ) -> tuple[float, float | None]:
    """``--expires`` and ``--soft-timeout`` checked (a usage error naming the flag)."""
    try:
        seconds = None if expires is None else parse_duration(expires, positive=True)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--expires") from None
    try:
        checked = make_options(options.timeout, expires=seconds, soft_timeout=soft_timeout)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--soft-timeout") from None
    return checked.expires, checked.soft_timeout


def _submit_options(timeout: float | None, retries: int, priority: int, queue: str,
                    backoff: float, start_in: str | None, start_at: str | None) -> TaskOptions:
    """The options of `taskq submit`; a bad --in or --at is a usage error."""
    if start_in is not None and start_at is not None:
        raise typer.BadParameter("give --in or --at, not both", param_hint="--in/--at")
    options = make_options(timeout, retries, priority, queue, backoff=backoff)
    try:
        if start_in is not None:
            options.run_at = start_time(delay=parse_duration(start_in))
        if start_at is not None:
            options.run_at = parse_when(start_at)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--in" if start_in else "--at") from None
    return options


def _no_stray_unit(start_in: str | None, args: list[str]) -> None:
    """``--in 10 minutes`` takes "10" (seconds) and leaves "minutes" as an argument of the
    function: refuse it (a usage error) rather than pass a stray word on."""
    if start_in is None or not _is_number(start_in):
        return
    for word in args:
        if not _is_number(word) and _is_number_of_seconds(f"1{word}"):
            raise typer.BadParameter(
                f"--in {start_in} {word}: a duration is one word: quote it, --in "
                f"'{start_in} {word}' (else {word!r} would be passed to the function)",
                param_hint="--in")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_number_of_seconds(text: str) -> bool:
    try:
        parse_duration(text)
    except ValueError:
        return False
    return True


@reaches_master
def results(
    job: Annotated[str, typer.Argument(help="The job name given (or printed) at submit.")],
    wait: Annotated[bool, typer.Option(help="Wait until every task of the job ended.")] = False,
    timeout: Annotated[float | None, typer.Option(help="With --wait, give up after this.")]
    = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object per result and line.")] = False,
    peek: Annotated[bool, typer.Option(
        "--peek", help="Show the results and leave every one on the master.")] = False,
    *,
    master: MasterOpts,
) -> None:
    """Print a job's results as they arrive; each leaves the master once printed (on a
    pipe: once the reading command took it), unless --peek. Exit 1 if any task failed."""
    from taskq.cli.handover import pipe_reader
    from taskq.cli.render import ResultsBar, progress_lines, same_terminal, stderr_is_terminal

    printer = jobs.Printer(sys.stdout, as_json, None if peek else pipe_reader(sys.stdout))

    def on_progress(progress: dict[str, Any]) -> None:  # running tasks that reported
        for line in progress_lines(progress):
            typer.echo(line, err=True)

    with user_errors(), _stoppable(printer, job):
        link = master.link(_say_hello(jobs.outbox_of(job)))
        try:
            if wait and stderr_is_terminal():  # a bar on stderr; results still go to stdout
                bar = ResultsBar(printer, lambda: link.remote.open_count(
                    jobs.outbox_of(job)), job, shared=same_terminal())
                with bar.bar:
                    still_open = jobs.collect(link.remote, job, wait, timeout, bar,
                                              bar.show_progress, consume=not peek)
            else:
                still_open = jobs.collect(link.remote, job, wait, timeout, printer,
                                          on_progress if wait else None, consume=not peek)
        finally:
            link.close()
    typer.echo(printer.summary(still_open), err=True)
    if printer.failed:
        raise typer.Exit(1)


def _say_hello(outbox: str) -> Callable[[BrokerAPI], None]:
    """On every (re)connect: the master sends again what it sent but was not acknowledged."""

    def hello(remote: BrokerAPI) -> None:
        remote.hello(outbox)

    return hello


class Stopped(BaseException):
    """A signal that ends the command arrived (raised in the main thread, as Ctrl-C raises
    KeyboardInterrupt; a BaseException so that no ``except Exception`` swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextmanager
def _stoppable(printer: jobs.Printer, job: str) -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP (a dropped terminal) stop ``taskq results`` at once and
    exit 128 + the signal; a closed stdout is an error. Either way nothing more is
    acknowledged: what was not written stays on the master for the next run."""

    def stop(signum: int, _frame: object) -> None:
        for sig in STOP_SIGNALS:  # a second signal ends the process at once
            signal.signal(sig, signal.SIG_DFL)
        raise Stopped(signum)

    old = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS
           if signal.getsignal(sig) is not signal.SIG_IGN}
    try:
        yield
    except (KeyboardInterrupt, Stopped) as exc:
        signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
        with contextlib.suppress(OSError):  # the terminal may be gone
            typer.echo(f"taskq: stopped by {signal.Signals(signum).name}: {printer.written} "
                       f"result(s) written; the rest stay on the master for the next "
                       f"`taskq results {job}`", err=True)
        raise typer.Exit(128 + signum) from None
    except jobs.OutputLost:
        _drop_stdout()
        raise
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so what is still buffered for a closed pipe is dropped
    at exit instead of failing again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


@reaches_master
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    job: Annotated[str | None, typer.Option(
        help="Show this job's running tasks: worker, for how long, progress.")] = None,
    *,
    master: MasterOpts,
) -> None:
    """Show the workers, the queue depth and counts of finished tasks (with --job, that
    job's running tasks and their progress)."""
    from taskq.cli.status_view import render

    if job is not None:
        from taskq.cli.tasks import job_status

        job_status(job, as_json, master)
        return
    where = master.where()
    with user_errors():
        link = master.link()
        try:
            snapshot = link.remote.status()
            jobs = link.remote.monitor()["jobs"]
        finally:
            link.close()
    if as_json:
        typer.echo(json.dumps({**asdict(snapshot), "jobs": jobs}, indent=2))
    else:
        render(snapshot, f"{where[0]}:{where[1]}", jobs=jobs)


def demo(
    tasks: Annotated[int, typer.Option(min=1, help="How many tasks to run.")] = 200,
    procs: Annotated[int | None, typer.Option(min=1, help="Worker processes.")] = None,
) -> None:
    """Start a local cluster, run a small real job on it, and show what happened."""
    from taskq.cli import demo as demo_mod

    with user_errors():
        raise typer.Exit(demo_mod.run(tasks, procs))
