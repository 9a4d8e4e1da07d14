"""Every hot path against its baseline, at one scale of the city: one table, one JSON file.

    .venv/bin/python bench/run.py [--scale 0.05] [--seed 1] [--only roster_import ...]
        [--json var/bench/latest.json] [--resume] [--readme] [--embedded]

Runs each benchmark module's ``measure(ctx)`` (bench/harness.py says what they share) on the
city ``bench/citygen.py`` generates at ``--scale`` (1 is Luoyang: 200,000 members), prints
the table (path, ours, baseline, ratio, target, verdict), writes the results with the
machine and the date as JSON and, with ``--readme``, puts the table in README.md between
its ``bench:start`` and ``bench:end`` markers. A benchmark that fails (an error, or a
result that does not check out) is a row marked ERROR and makes the exit status 1; a
missed target is a verdict, not a failure. ``--embedded`` runs without PostgreSQL and
RabbitMQ (the benchmarks that need them say so and are skipped).

The JSON file is written after each benchmark, so a long run (the city: about an hour and
a half on two cores) that stops keeps what it measured; ``--resume`` runs only the
benchmarks the file does not hold yet (same scale and seed) and keeps the others' rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parent.parent
#: In the order of the issue's list of targets.
MODULES = (
    "roster_import",
    "pipeline",
    "notify_send",
    "pairing",
    "reminders",
    "reporting",
    "reporting_rebuild",
)
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def machine() -> dict[str, object]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def run(
    ctx: harness.Context,
    names: Sequence[str],
    done: Callable[[str, list[harness.Result], float, bool], None],
) -> None:
    """Run each benchmark of ``names``, telling ``done`` its rows, seconds and whether it
    failed."""
    for name in names:
        print(f"bench: {name} …", file=sys.stderr, flush=True)
        started = time.perf_counter()
        broke = False
        try:
            module = importlib.import_module(name)
            found = list(module.measure(ctx))
        except Exception as error:  # one benchmark's failure is a row, the others still run
            traceback.print_exc()
            reason = f"{type(error).__name__}: {error}".splitlines()[0][:160]
            found = [harness.Result(name, "", 0.0, None, None, "—", False, f"ERROR {reason}")]
            broke = True
        took = time.perf_counter() - started
        print(f"bench: {name} took {took:.0f} s", file=sys.stderr)
        done(name, found, took, broke)


def readme(text: str) -> None:
    path = ROOT / "README.md"
    old = path.read_text()
    if START not in old or END not in old:
        raise SystemExit(f"README.md has no {START} … {END} markers")
    head, rest = old.split(START, 1)
    path.write_text(head + START + "\n" + text + "\n" + END + rest.split(END, 1)[1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.05, help="0.001 … 1 (1: Luoyang)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", nargs="+", choices=MODULES, default=list(MODULES))
    parser.add_argument("--json", type=Path, default=ROOT / "var" / "bench" / "latest.json")
    parser.add_argument(
        "--resume", action="store_true", help="keep the benchmarks --json holds already"
    )
    parser.add_argument("--readme", action="store_true", help="put the table in README.md")
    parser.add_argument("--embedded", action="store_true", help="no PostgreSQL nor RabbitMQ")
    args = parser.parse_args(argv)
    if not 0 < args.scale <= 1:
        parser.error("--scale must lie in (0, 1]")

    ctx = harness.Context(scale=args.scale, seed=args.seed)
    if args.embedded:
        ctx.postgres = ctx.rabbitmq = None
    # each benchmark's rows and seconds, by name, in MODULES order when shown
    rows: dict[str, list[harness.Result]] = {}
    seconds: dict[str, float] = {}
    failed: list[str] = []
    if args.resume and args.json.exists():
        kept = json.loads(args.json.read_text())
        if (kept["scale"], kept["seed"]) == (args.scale, args.seed):
            for name, found in kept.get("benchmarks", {}).items():
                if name not in kept["failed"]:
                    rows[name] = [harness.Result(**r) for r in found["results"]]
                    seconds[name] = found["seconds"]
    box = machine()

    def write(name: str | None = None, found: list[harness.Result] | None = None,
              took: float = 0.0, broke: bool = False) -> str:  # fmt: skip
        if name is not None and found is not None:
            rows[name], seconds[name] = found, took
            if broke:
                failed.append(name)
        order = [n for n in MODULES if n in rows]
        results = [r for n in order for r in rows[n]]
        when = datetime.now(UTC)
        counts = ctx.city.counts
        title = (
            f"Scale {args.scale:g} ({counts['members']:,} members, {counts['communities']:,} "
            f"communities), seed {args.seed}, {when:%Y-%m-%d}, {box['cpus']} cores "
            f"({box['cpu'] or 'unknown CPU'}), {box['memory_gb']} GiB, Python {box['python']}; "
            f"{sum(seconds.values()) / 60:.0f} min in all."
        )
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "scale": args.scale,
                    "seed": args.seed,
                    "date": when.isoformat(timespec="seconds"),
                    "seconds": round(sum(seconds.values()), 1),
                    "machine": box,
                    "counts": counts,
                    "results": [dataclasses.asdict(r) | {"verdict": r.verdict} for r in results],
                    "benchmarks": {
                        n: {
                            "seconds": round(seconds[n], 1),
                            "results": [dataclasses.asdict(r) for r in rows[n]],
                        }
                        for n in order
                    },
                    "failed": failed,
                },
                ensure_ascii=False,
                indent=2,
            )
            + "\n"
        )
        return title + "\n\n" + harness.table(results)

    try:
        run(ctx, [n for n in args.only if n not in rows], write)
    finally:
        ctx.close()
    text = write()
    print(text)
    print(f"bench: results in {args.json}", file=sys.stderr)
    if args.readme:
        readme(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
