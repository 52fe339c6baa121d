"""``python -m bench``: parse the options, run the workloads, print and save the report."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from rich.console import Console

from bench import report
from bench.procs import ROOT, StealMeter, install_signal_exit
from bench.runner import Runner
from bench.systems import SYSTEM_NAMES
from bench.workloads import FULL, QUICK, WORKLOAD_NAMES, WORKLOADS

DEFAULT_JSON = ROOT / "bench" / "results.json"
NOISY_STEAL_PCT = 10.0  # the share of stolen CPU time above which the report warns


def _names(text: str | None, known: tuple[str, ...], what: str) -> list[str]:
    if not text:
        return list(known)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown)}; choose from {', '.join(known)}")
    return [n for n in known if n in names]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Benchmark taskq against its peers, side by side.")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: a smoke run of well under a minute per system")
    parser.add_argument("--only", metavar="NAME[,NAME]",
                        help=f"workloads to run (default: all): {', '.join(WORKLOAD_NAMES)}")
    parser.add_argument("--systems", metavar="NAME[,NAME]",
                        help=f"systems to compare (default: all): {', '.join(SYSTEM_NAMES)}")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="PATH",
                        help="where to write every figure (default: bench/results.json)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="rounds: each runs every system on every workload once; "
                             "the best run is kept (default: 1)")
    args = parser.parse_args(argv)
    try:
        args.only = _names(args.only, WORKLOAD_NAMES, "workload")
        args.systems = _names(args.systems, SYSTEM_NAMES, "system")
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def command_line(argv: list[str]) -> str:
    return " ".join(["python", "-m", "bench", *map(shlex.quote, argv)])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["scale"]:  # the master with many connected workers: bench/scale.py
        from bench import scale

        return scale.main(argv[1:])
    if argv[:1] == ["chaos"]:  # a durable master SIGKILLed under load: bench/chaos.py
        from bench import chaos

        return chaos.main(argv[1:])
    if argv[:1] == ["restore"]:  # a durable master on a big journal: bench/restore.py
        from bench import restore

        return restore.main(argv[1:])
    args = parse_args(argv)
    install_signal_exit()
    console = Console(width=max(Console().width, 190))
    sizes = QUICK if args.quick else FULL
    workloads = [w for w in WORKLOADS if w.name in args.only]
    load_start = os.getloadavg()
    if load_start[0] > (os.cpu_count() or 1) / 2:
        console.print(f"[yellow]note[/]: the machine is busy (load average {load_start[0]:.1f} "
                      f"on {os.cpu_count()} cores); figures will be noisy")
    started, steal = time.perf_counter(), StealMeter()
    results = Runner(sizes, args.repeat, console.print).run(args.systems, workloads)
    elapsed, stolen = time.perf_counter() - started, steal.percent()
    if stolen is not None and stolen >= NOISY_STEAL_PCT:
        console.print(f"[yellow]note[/]: the hypervisor took {stolen:.0f}% of the CPU time "
                      "(steal) during the run; figures are noisy, compare ratios of one run")
    checks = report.verdicts(results)
    report.print_report(console, results, args.systems, checks)
    command = command_line(argv)
    report.write_json(args.json, results, checks, sizes, command,
                      {"quick": args.quick, "repeat": args.repeat, "systems": args.systems,
                       "workloads": args.only, "elapsed_s": round(elapsed, 1),
                       "load_avg_start": load_start, "load_avg_end": os.getloadavg(),
                       "cpu_steal_pct": stolen})
    console.print(f"figures written to {args.json} in {elapsed:.0f} s")
    console.print(f"reproduce: cd {shlex.quote(str(ROOT))} && {command}", soft_wrap=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
