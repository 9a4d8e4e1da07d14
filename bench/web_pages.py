"""Benchmark: every page of the web app, on the month ``make demo`` built, in one run.

``servicemonth up`` serves ``./var`` (or ``--home``) on a free port of 127.0.0.1; the demo's
member, community worker, unit organiser and leader sign in through the pages with SMS
codes from the file outbox; each page is then fetched ``--loops`` times in a row. Per page:
the API calls it made (its ``X-Api-Calls``), its size, the median and p95 time, and that
median against the baseline measured in the same run: one plain API round trip
(``GET /api/v1/vocabulary``) on the same server.

    .venv/bin/python bench/web_pages.py [--home var] [--loops 30]

(``make bench-pages`` runs the demo first when ``./var`` holds no month.)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from services.demo import _free_port
from services.demo_data import COMMUNITIES
from services.demo_sign_in import LEADER_PHONE, RESIDENT_PHONE, UNIT_PHONE, WORKER_PHONE
from services.demo_web import PageVisitor
from shared.config import child_environment

PAGES = {
    RESIDENT_PHONE: [
        "/me",
        "/me/wishes",
        "/me/records",
        "/me/settings",
        "/me/record.pdf",
        f"/c/{COMMUNITIES[3]}",
    ],
    WORKER_PHONE: [
        "/community",
        "/community/reports",
        "/community/wishes",
        "/community/records",
        "/community/publish",
        "/community/pairing",
        "/community/poster",
        "/community/poster.png",
        "/community/poster.pdf",
    ],
    UNIT_PHONE: ["/unit", "/unit/roster", "/unit/members", "/unit/members.xlsx"],
    LEADER_PHONE: ["/leader", "/leader/reports"],
}
STATIC = ["/static/app.css", "/static/htmx.min.js"]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def timed(client: httpx.Client, path: str, loops: int) -> tuple[httpx.Response, list[float]]:
    times = []
    answer = client.get(path)  # warm up: first render compiles the templates
    for _ in range(loops):
        started = time.perf_counter()
        answer = client.get(path)
        times.append(time.perf_counter() - started)
    return answer, times


def run(home: Path, loops: int) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = child_environment({"SERVICEMONTH_HOME": str(home), "SERVICEMONTH_CLOCK_FILE": None})
    server = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "up", "--port", str(port), "--no-scheduler"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=base, timeout=60) as http:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("servicemonth up did not answer within 90 s")
                time.sleep(0.3)
            _, baseline = timed(http, "/api/v1/vocabulary", loops)
            static = 0
            for path in STATIC:
                answer = http.get(path, headers={"Accept-Encoding": "gzip"})
                static += answer.num_bytes_downloaded
        base_ms = statistics.median(baseline) * 1000
        print(f"baseline: GET /api/v1/vocabulary median {base_ms:.1f} ms ({loops} loops)")
        print(f"static files a first visit loads (gzipped, then cached): {static / 1024:.1f} KB")
        print(f"{'page':<26}{'status':>7}{'API':>5}{'KB':>8}{'median':>9}{'p95':>9}{'×base':>8}")
        heaviest = ("", 0)
        for phone, paths in PAGES.items():
            with PageVisitor(base, home / "outbox" / "sms.jsonl") as visitor:
                visitor.sign_in(phone)
                for path in paths:
                    answer, times = timed(visitor.web, path, loops)
                    size = len(answer.content)
                    if answer.headers.get("content-type", "").startswith("text/html"):
                        heaviest = max(heaviest, (path, size), key=lambda x: x[1])
                    median = statistics.median(times) * 1000
                    print(
                        f"{path:<26}{answer.status_code:>7}"
                        f"{answer.headers.get('x-api-calls', '-'):>5}{size / 1024:>8.1f}"
                        f"{median:>8.1f}m{p95(times) * 1000:>8.1f}m{median / base_ms:>8.1f}"
                    )
        print(f"heaviest page: {heaviest[0]}, {heaviest[1] / 1024:.1f} KB of HTML")
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=Path("var"))
    parser.add_argument("--loops", type=int, default=30)
    args = parser.parse_args()
    if not (args.home / "clock").exists():
        raise SystemExit(f"{args.home} holds no demo month: run `make demo` first")
    run(args.home.resolve(), args.loops)


if __name__ == "__main__":
    main()
