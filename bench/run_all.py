"""Run the benchmarks and write their results and RESULTS.md.

python -m bench.run_all            # full: the numbers the targets refer to (< 1 hour)
python -m bench.run_all --quick    # a few minutes, indicative only
python -m bench.run_all --smoke    # seconds per benchmark: keeps the scripts working
python -m bench.run_all --only overhead,latency --out /tmp/bench
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio

from bench import dask_scaling, latency, overhead, pruning, samplers, scaling
from bench.common import BENCH_DIR, command_line, machine_info, now_iso, write_result
from bench.report import write_results_md

BENCHMARKS: dict[str, ModuleType] = {
    "overhead": overhead,
    "scaling": scaling,
    "pruning": pruning,
    "samplers": samplers,
    "latency": latency,
    "dask": dask_scaling,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run_all",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a few-minute version")
    size.add_argument("--smoke", action="store_true", help="the smallest sizes (for tests)")
    parser.add_argument(
        "--only",
        default=",".join(BENCHMARKS),
        help=f"comma-separated subset of {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=BENCH_DIR,
        help="folder for results/ and RESULTS.md (default: bench/)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch workspaces and server logs"
    )
    args = parser.parse_args(argv)
    args.names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    args.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    return args


def run_one(name: str, mode: str, out: Path, scratch: Path, command: str) -> dict[str, Any]:
    module = BENCHMARKS[name]
    started_at, started = now_iso(), time.perf_counter()
    machine = machine_info()
    print(f"[bench] {name} ({mode}) started {started_at}", flush=True)
    result = anyio.run(module.run, mode, scratch, out / "results")
    payload = {
        "benchmark": name,
        "mode": mode,
        "command": command,
        "date": started_at,
        "duration_s": time.perf_counter() - started,
        "machine": machine,
        **result,
    }
    write_result(out, name, payload, module.markdown(payload))
    print(
        f"[bench] {name} done in {payload['duration_s']:.0f} s; {targets_line(payload)}", flush=True
    )
    return payload


def targets_line(payload: dict[str, Any]) -> str:
    parts = []
    for entry in payload.get("targets", {}).values():
        met = {True: "met", False: "MISSED", None: "n/a"}[entry["met"]]
        value = entry["value"]
        shown = f"{value:.4g}" if isinstance(value, float) else value
        parts.append(f"{entry['target']}: {shown} ({met})")
    return "; ".join(parts) or "no targets"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="seqtune-bench-"))
    failed = []
    for name in args.names:
        try:
            run_one(name, args.mode, args.out, scratch / name, command_line(argv))
        except Exception:
            traceback.print_exc()
            failed.append(name)
    path = write_results_md(args.out)
    print(f"[bench] wrote {path}", flush=True)
    if failed or args.keep:
        print(f"[bench] scratch workspaces and server logs kept in {scratch}", flush=True)
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    if failed:
        print(f"[bench] FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
