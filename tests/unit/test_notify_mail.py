"""The report e-mail's parts, as fetched from reporting."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from services.notify.mail import ReportMissing, read_report
from services.notify.rendering import RenderError


@dataclass
class Folder:
    """Report files from a folder (what reporting's route would answer)."""

    root: Path

    def fetch(self, path: str) -> bytes:
        if not (self.root / path).is_file():
            raise ReportMissing(f"report file {path} is not there")
        return (self.root / path).read_bytes()


HTML = (
    '<html><head><title>t</title></head><body style="x"><h1>报告</h1>'
    '<img src="ranking.png"><img src = "progress.png"><img src="other.png"></body></html>'
)


def files(*names: str) -> list[dict[str, str]]:
    media = {"html": "text/html", "png": "image/png", "xlsx": "application/vnd.ms-excel"}
    return [{"path": f"r/{n}", "media_type": media[n.rsplit(".", 1)[1]]} for n in names]


def test_the_body_is_the_report_with_its_charts_inline_and_the_sheet_attached(
    tmp_path: Path,
) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "report.html").write_text(HTML, encoding="utf-8")
    for name in ("ranking.png", "progress.png", "report.xlsx"):
        (tmp_path / "r" / name).write_bytes(name.encode())
    report = read_report(
        files("report.html", "ranking.png", "progress.png", "report.xlsx"), Folder(tmp_path)
    )
    assert report.html is not None and report.html.startswith("<h1>报告</h1>")
    assert "<title>" not in report.html and 'src="other.png"' in report.html
    by_name = {a.filename: a for a in report.attachments}
    assert set(by_name) == {"ranking.png", "progress.png", "report.xlsx"}
    for name in ("ranking.png", "progress.png"):
        cid = by_name[name].inline_cid
        assert cid and f"cid:{cid}" in report.html
    assert by_name["report.xlsx"].inline_cid is None


def test_a_missing_file_or_one_outside_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "report.html").write_text(HTML, encoding="utf-8")
    with pytest.raises(ReportMissing, match=r"report\.xlsx"):
        read_report(files("report.html", "report.xlsx"), Folder(tmp_path))
    with pytest.raises(RenderError, match="outside"):
        read_report([{"path": "../secret.txt", "media_type": "text/plain"}], Folder(tmp_path))
