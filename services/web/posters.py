"""Printed things: a community's QR poster (PNG and PDF) and the PDF helper with a Chinese
font that other printouts (a member's service record) reuse.

The font is found at run time: ``fc-match`` for Noto Sans CJK SC (it tells the file and the
face's index in a collection), then a few usual paths. No CJK font: :class:`FontMissing`
says what to install.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import segno
from fpdf import FPDF

#: Faces tried after fc-match: (file, index of the Simplified Chinese face in a collection).
CANDIDATES: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
)
#: The family name :func:`cjk_pdf` registers.
FAMILY = "cjk"


class FontMissing(RuntimeError):
    """No font with Chinese characters on this machine."""


@lru_cache(maxsize=1)
def cjk_font() -> tuple[str, int]:
    """The file of a Simplified Chinese font and the face's index in it (0 for one face)."""
    found = _fc_match()
    if found is not None:
        return found
    for path, index in CANDIDATES:
        if Path(path).is_file():
            return path, index
    raise FontMissing(
        "没有找到中文字体 (no CJK font): install fonts-noto-cjk "
        "(apt-get install fonts-noto-cjk) and try again"
    )


def _fc_match() -> tuple[str, int] | None:
    tool = shutil.which("fc-match")
    if tool is None:
        return None
    try:
        answer = subprocess.run(
            [tool, "-f", "%{file}|%{index}|%{lang}", "Noto Sans CJK SC:lang=zh-cn"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    path, _, rest = answer.partition("|")
    index, _, langs = rest.partition("|")
    # fc-match always names some font; only one that covers Chinese will do.
    if not path or "zh-cn" not in langs.split("|") or not Path(path).is_file():
        return None
    return path, int(index) if index.isdigit() else 0


def cjk_pdf(orientation: str = "portrait") -> FPDF:
    """An A4 page-less FPDF with the Chinese font as family ``cjk`` (already selected, 12 pt),
    15 mm margins and automatic page breaks. Add pages and text; ``bytes(pdf.output())``."""
    path, index = cjk_font()
    pdf = FPDF(orientation=orientation, unit="mm", format="A4")
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(auto=True, margin=15)
    if path.lower().endswith((".ttc", ".otc")):
        pdf.add_font(FAMILY, "", path, collection_font_number=index)
    else:
        pdf.add_font(FAMILY, "", path)
    pdf.set_font(FAMILY, size=12)
    pdf.set_creator("servicemonth")
    return pdf


def qr_png(data: str, scale: int = 10) -> bytes:
    """The QR code of ``data`` as a PNG (error correction M, a quiet zone of 4 modules)."""
    buffer = io.BytesIO()
    segno.make(data, error="m", micro=False).save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


def poster_pdf(title: str, subtitle: str, url: str, steps: list[str]) -> bytes:
    """One A4 page to print and put up: the community's name, 扫码报到, the QR code of
    ``url``, the address written out and the short steps."""
    pdf = cjk_pdf()
    pdf.set_title(f"{title} 扫码报到")
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin
    pdf.set_text_color(181, 18, 27)
    pdf.set_font(FAMILY, size=15)
    pdf.cell(width, 10, "在职党员进社区服务月", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(31, 35, 40)
    pdf.set_font(FAMILY, size=26)
    pdf.multi_cell(width, 13, title, align="C", new_x="LMARGIN", new_y="NEXT")
    if subtitle:
        pdf.set_font(FAMILY, size=12)
        pdf.cell(width, 8, subtitle, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_text_color(181, 18, 27)
    pdf.set_font(FAMILY, size=40)
    pdf.cell(width, 18, "扫码报到", align="C", new_x="LMARGIN", new_y="NEXT")
    side = 110.0
    pdf.image(io.BytesIO(qr_png(url, scale=12)), x=(pdf.w - side) / 2, y=pdf.get_y() + 3, w=side)
    pdf.set_y(pdf.get_y() + side + 6)
    pdf.set_text_color(87, 96, 106)
    pdf.set_font(FAMILY, size=11)
    pdf.cell(width, 7, url, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_text_color(31, 35, 40)
    pdf.set_font(FAMILY, size=14)
    for number, step in enumerate(steps, 1):
        pdf.multi_cell(width, 8, f"{number}. {step}", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
