"""The summary report as a leader sees it: built by ``servicemonth report run`` in its own
process, opened in headless Chromium at a phone's width, with charts whose Chinese renders.

The screenshot is kept in the test's folder and copied to ``var/test-artifacts/``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from services.reporting import charts
from services.reporting.contents import gather
from tests.integration.test_reporting_reports import OPEN, Feed

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "var" / "test-artifacts"
REPORT_RUN = [sys.executable, "-m", "services.cli", "report", "run"]
HEADLESS = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]


def distinct_colours(path: Path) -> int:
    with Image.open(path) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    return len(colours or [])


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_the_html_report_renders_in_headless_chromium_with_its_charts(
    backend: Any, tmp_path: Path
) -> None:
    rt = backend.rt("reporting")
    feed = Feed(rt)
    feed.directory()
    for n in range(15):
        feed.member(n, OPEN + timedelta(days=n % 9, hours=9), active=n % 4 != 1)

    done = subprocess.run(
        [*REPORT_RUN, "--scope", "city", "--period", "2016-06-26..2016-07-11"],
        env={**backend.env, "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    html = Path(done.stdout.splitlines()[0].rsplit(": ", 1)[1])
    assert html.is_file() and html.parent.parent == backend.settings.reports_dir
    assert "双对接率" in done.stdout and "built in" in done.stdout

    for name in ("ranking.png", "progress.png"):
        with Image.open(html.parent / name) as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 100
        assert distinct_colours(html.parent / name) > 20

    shot = tmp_path / "report-480.png"
    subprocess.run(
        [*HEADLESS, f"--screenshot={shot}", "--window-size=480,2000", html.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "report-480.png")
    with Image.open(shot) as image:
        assert image.size == (480, 2000)
    assert shot.stat().st_size > 30_000
    assert distinct_colours(shot) > 200  # text, the red header, two charts: not a blank page

    # The charts' Chinese titles draw with real glyphs: no "Glyph … missing" from matplotlib.
    with rt.uow() as uow:
        data = gather(
            uow,
            "city",
            OPEN.astimezone(UTC),
            datetime(2016, 7, 11, tzinfo=UTC),
            threshold=0.6,
            campaign_start=rt.settings.campaign_start,
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        drawn = [charts.ranking_chart(data), charts.progress_chart(data)]
    assert not [w for w in caught if "Glyph" in str(w.message)], [str(w.message) for w in caught]
    assert "各县（市）区双对接率排名" in drawn[0].texts and "累计进度" in drawn[1].texts
