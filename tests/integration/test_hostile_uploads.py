"""Every file parser behind the API (rosters, needs, projects, directory, staff) given what
hypothesis makes of its own headers and hostile cells: SQL, markup, template syntax,
formulas, control characters, numbers in every spelling, headers missing, twice or
unknown. Each answer is a clear refusal (4xx naming the file or a row) or an import with its
report, never a 5xx; an import always accounts for every row (landed or reported)."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.registration import rosters, tasks
from tests import support

pytestmark = [
    pytest.mark.parametrize("backend", ["embedded"], indirect=True),
    pytest.mark.long,  # hypothesis over five parsers: make e2e-deployment runs it
]

HOME = "410303001001"
CELLS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "'; DROP TABLE members; --",
            "<script>alert(1)</script>",
            "{{ 7*7 }}{% include 'x' %}",
            '=HYPERLINK("http://x","y")',
            "13812348000",
            "410303198001010015",
            "１３８１２３４８０００",
            "\x00\x1b[31m",
            "是",
            "否",
            "410303001001",
            "U410303001",
            "",
        ]
    ),
)
HEADERS = {
    "roster": [h for _, h in rosters.COLUMNS],
    "needs": ["标题", "所需专长", "所需人数", "服务时间", "服务对象类别"],
    "projects": ["项目类型", "标题", "服务时间"],
    "directory": ["kind", "code", "name", "parent_code", "level", "community_code"],
    "staff": ["姓名", "手机号", "电子邮箱", "角色", "范围"],
}


@st.composite
def sheet(draw: Any, kind: str) -> bytes:
    """A CSV whose header is the real one, shuffled, cut short, doubled or with strangers."""
    known = HEADERS[kind]
    header = draw(
        st.lists(st.sampled_from([*known, "备注", "", "姓名"]), min_size=1, max_size=len(known) + 2)
        | st.permutations(known)
    )
    rows = draw(st.lists(st.lists(CELLS, min_size=len(header), max_size=len(header)), max_size=6))
    out = io.StringIO()
    csv.writer(out).writerows([header, *rows])
    return out.getvalue().encode("utf-8", "surrogatepass")


def _post(http: Any, kind: str, data: bytes) -> Any:
    files = {"file": (f"{kind}.csv", data, "text/csv")}
    if kind == "roster":
        return http.post("/api/v1/rosters", data={"unit_code": "U410303001"}, files=files)
    if kind in ("needs", "projects"):
        return http.post(f"/api/v1/communities/{HOME}/{kind}/upload", files=files)
    if kind == "directory":
        return http.post("/api/v1/directory", files=files)
    return http.post("/api/v1/staff/import", files=files)


@pytest.mark.parametrize("kind", sorted(HEADERS))
def test_a_hostile_sheet_is_refused_or_imported_with_its_report(backend: Any, kind: str) -> None:
    support.load_sample_directory(backend)
    if kind in ("needs", "projects"):
        support.relay_all(backend)  # pairing learns the communities from the directory
        support.run_consumers(
            [support.consumer(backend, "pairing")], until=lambda: False, timeout=3
        )
    http = support.client(support.issue_token(backend, "admin", "city"))

    @given(data=sheet(kind))
    @settings(
        max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
    )
    def answered(data: bytes) -> None:
        answer = _post(http, kind, data)
        assert answer.status_code < 500, answer.text
        if answer.status_code >= 400:
            body = answer.json()
            assert body["detail"], body  # says what is wrong
            return
        if kind == "roster":  # the import runs in the worker: run its body here
            tasks.import_roster(answer.json()["id"])
            done = http.get(f"/api/v1/rosters/{answer.json()['id']}").json()
            assert done["status"] in ("done", "failed"), done
            if done["status"] == "done":
                rows = len(data.decode("utf-8", "replace").splitlines()) - 1
                assert done["accepted"] + done["rejected"] <= rows, done

    answered()
