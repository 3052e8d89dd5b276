"""``python -m bench [--quick] [--device cpu|cuda|auto] [--data DIR] [--markdown]``: run every measure, print one table.

A measure that raises prints its error in its row and the others go on: benchmarks report, they
never fail on slowness.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from bench import (
    batching_speed,
    concurrency,
    generation,
    hardware,
    memory,
    overhead,
    peer,
    ray_grid,
    stacked,
    startup,
    thousand_runs,
    tui_cost,
    tui_latency,
)
from bench.context import Bench
from bench.table import Row, markdown_table, text_table
from bench.workloads import DEFAULT_DATA, build_workloads

# The TUI rows run last: they share the machine with a live training run.
MEASURES = [
    peer,
    batching_speed,
    overhead,
    hardware,
    startup,
    memory,
    generation,
    stacked,
    tui_cost,
    tui_latency,
    concurrency,
    thousand_runs,
    ray_grid,
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="lm-explorer benchmarks: ratios against baselines timed in the same run."
    )
    parser.add_argument("--quick", action="store_true", help="a pass of about a minute: fewer repetitions, epochs and batches")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto", help="where training runs (default auto)")
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        metavar="DIR",
        help="the NYT Articles*.csv folder (default ../shared/data/nyt-articles)",
    )
    parser.add_argument("--only", type=_measure_numbers, metavar="N,N", help="run only these measures (by number)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    measures = [module for module in MEASURES if args.only is None or measure_number(module) in args.only]
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda was asked for but this machine has no CUDA GPU; use --device cpu or auto.", file=sys.stderr)
        return 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lm-explorer-bench-") as scratch:
        bench = Bench(
            args.quick, args.device, args.data.resolve(), Path(scratch), build_workloads(args.data.resolve(), Path(scratch))
        )
        rows: list[tuple[int, Row]] = []
        for order, module in enumerate(measures):
            print(f"[{time.perf_counter() - started:5.0f} s] {module.MEASURE}", file=sys.stderr, flush=True)
            try:
                rows.extend((order, row) for row in module.measure(bench))
            except Exception as error:  # report and go on: one broken measure must not hide the others
                traceback.print_exc(file=sys.stderr)
                rows.append((order, Row("–", module.MEASURE, f"error: {type(error).__name__}: {error}")))
    table = [row for _, row in sorted(rows, key=lambda item: (item[1].measure[:1], item[0]))]
    print(machine(args.device))
    print(
        f"command: python -m bench {shlex.join(argv if argv is not None else sys.argv[1:])}  ({time.perf_counter() - started:.0f} s)\n"
    )
    print(markdown_table(table) if args.markdown else text_table(table))
    return 0


def measure_number(module) -> int:
    """A measure's number: the first word of its ``MEASURE`` title."""
    return int(module.MEASURE.split()[0])


def _measure_numbers(text: str) -> set[int]:
    known = {measure_number(module) for module in MEASURES}
    numbers = {int(part) for part in text.split(",") if part.strip().isdigit()}
    if not numbers or not numbers <= known:
        raise argparse.ArgumentTypeError(
            f"--only takes measure numbers {min(known)}–{max(known)} separated by commas, not {text!r}"
        )
    return numbers


def machine(device: str) -> str:
    """CPU model, cores, torch version and the device training ran on."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    cpu = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor() or "unknown CPU"
    )
    cuda = torch.cuda.is_available() and device != "cpu"
    where = f"cuda ({torch.cuda.get_device_name()})" if cuda else "cpu"
    return (
        f"machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"Python {platform.python_version()}, device {where}"
    )


if __name__ == "__main__":
    sys.exit(main())
