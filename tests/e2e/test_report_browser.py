"""The summary report as a leader sees it: built by ``servicemonth report run`` in its own
process, opened in headless Chromium at a phone's width, with charts whose Chinese renders.

Whether Chromium draws the page's Chinese with a real CJK font (not tofu boxes) is checked
by rendering the report's own text in the report's own font stack next to the same number
of private-use characters, which no font draws (tofu): the two must differ. With only a
Latin font installed (a fontconfig limited to DejaVu) the same check sees no difference —
so it can fail.

The screenshot is kept in the test's folder and copied to ``test-artifacts/`` (git ignores it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops

from services.reporting import charts
from services.reporting.contents import gather
from tests.integration.test_reporting_reports import OPEN, Feed

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
REPORT_RUN = [sys.executable, "-m", "services.cli", "report", "run"]
HEADLESS = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]


#: A phrase of the report's title, and as many characters no font has a glyph for.
CHINESE = "在职党员进社区服务月"
TOFU = "\ue000" * len(CHINESE)


def font_stack(html: str) -> str:
    """The report's CSS font-family list (on its body)."""
    found = re.search(r"<body[^>]*font-family:([^;\"]+)", html)
    assert found, "the report names its fonts on the body"
    return found.group(1)


def render_text(folder: Path, text: str, stack: str, env: dict[str, str] | None = None) -> Any:
    """``text`` drawn by headless Chromium in ``stack`` (lang zh-CN), as a grey image."""
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / f"text-{len(list(folder.glob('*.html')))}.html"
    page.write_text(
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8"></head>'
        f'<body style="margin:0;background:#fff;color:#000;font-family:{stack};font-size:40px">'
        f'<p style="margin:10px">{text}</p></body></html>',
        encoding="utf-8",
    )
    shot = page.with_suffix(".png")
    subprocess.run(
        [*HEADLESS, f"--screenshot={shot}", "--window-size=600,100", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
        env=env,
    )
    with Image.open(shot) as image:
        return image.convert("L")


def latin_only_fonts(folder: Path) -> dict[str, str]:
    """An environment whose fontconfig knows only DejaVu (no CJK glyphs at all)."""
    dejavu = subprocess.run(
        ["fc-match", "-f", "%{file}", "DejaVu Sans"], capture_output=True, text=True, check=True
    ).stdout
    assert "DejaVu" in dejavu, "the Latin control font (fonts-dejavu-core) is installed"
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
        f"<dir>{Path(dejavu).parent}</dir><cachedir>{folder / 'cache'}</cachedir></fontconfig>",
        encoding="utf-8",
    )
    return {**os.environ, "FONTCONFIG_FILE": str(conf)}


def differs(a: Any, b: Any) -> bool:
    return ImageChops.difference(a, b).getbbox() is not None


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

    # The page's Chinese is drawn in a real CJK font: not the tofu of characters no font has.
    page = html.read_text(encoding="utf-8")
    assert CHINESE in page
    stack = font_stack(page)
    glyphs = tmp_path / "glyphs"
    assert differs(render_text(glyphs, CHINESE, stack), render_text(glyphs, TOFU, stack)), (
        "the report's Chinese renders as tofu boxes: no CJK font (fonts-noto-cjk) for its stack"
    )
    latin = latin_only_fonts(tmp_path / "latin")  # the check can fail: without a CJK font
    assert not differs(
        render_text(glyphs, CHINESE, stack, latin), render_text(glyphs, TOFU, stack, latin)
    )

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
