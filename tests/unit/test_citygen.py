"""The benchmarks' city (bench/citygen.py): deterministic, sized by the scale, and every
file passes the product's own readers and validators."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
import uuid
from collections import Counter, defaultdict
from datetime import date, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from services.pairing import activities as records
from services.pairing.needs import NEED_COLUMNS, PROJECT_COLUMNS, check_need, check_project
from services.pairing.schemas import NeedIn, ProjectIn, RecordIn, TeamIn, WishIn
from services.registration import directory as directory_file
from services.registration import rules
from services.registration.enrolment import Directory
from services.registration.models import Community, Unit
from services.registration.rosters import check_row, open_table
from services.registration.schemas import MemberIn
from shared.pii import Sealer
from shared.tabular import read_table
from shared.vocabulary import AVAILABILITY

ROOT = Path(__file__).resolve().parents[2]
SEALER = Sealer(b"k" * 32)


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("citygen", ROOT / "bench" / "citygen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["citygen"] = module
    spec.loader.exec_module(module)
    return module


citygen = _load()
START, END = citygen.CAMPAIGN


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("city")
    citygen.write(citygen.generate(0.01, seed=1), out)
    return out


@pytest.fixture(scope="module")
def city() -> Any:
    return citygen.generate(0.01, seed=1)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


class ParsedDirectory(Directory):
    """The directory as the file gives it, without a database (model objects only)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.communities = {
            r["code"]: Community(code=r["code"], name=r["name"], district_code=r["code"][:6])
            for r in rows
            if r["kind"] == "community"
        }
        self.units = {
            r["code"]: Unit(
                code=r["code"],
                name=r["name"],
                level=r["level"],
                district_code=r["parent_code"][:6],
                community_code=r["community_code"],
                contact_community_code=r["contact_community_code"] or None,
            )
            for r in rows
            if r["kind"] == "unit"
        }
        self._complete = True


# --- determinism and size ---------------------------------------------------------------------


def test_the_same_seed_and_scale_write_byte_identical_files(tmp_path: Path) -> None:
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        citygen.write(citygen.generate(0.005, seed=seed), tmp_path / name)
    first, again, other = (_files(tmp_path / n) for n in "abc")

    assert any(k.endswith(".xlsx") for k in first)
    assert first == again
    assert first["members.jsonl"] != other["members.jsonl"]


@pytest.mark.parametrize("scale", [0.005, 0.01, 0.05, 0.5, 1])
def test_counts_scale_linearly_with_at_least_one_of_each(scale: float) -> None:
    n = citygen.counts(scale)

    for what, target in citygen.TARGETS.items():
        floor = {"communities": 14, "units": 15}.get(what, 1)
        assert n[what] == max(floor, round(target * scale)), what
    if scale == 1:
        assert n == citygen.TARGETS


def test_a_generated_city_holds_what_the_counts_say(city: Any, written: Path) -> None:
    n = citygen.counts(0.01)
    manifest = json.loads((written / "manifest.json").read_text(encoding="utf-8"))

    assert len(city.communities) == n["communities"] and len(city.units) == n["units"]
    assert len(city.members) == n["members"] == 2_000
    for what in ("members", "needs", "projects", "teams", "wishes", "activities"):
        assert len(_jsonl(written / f"{what}.jsonl")) == n[what] == manifest[what], what
    assert manifest["divisions"] == 15 and manifest["districts"] == 14
    rosters = sorted((written / "rosters" / "csv").glob("*.csv"))
    assert len(rosters) == len(list((written / "rosters" / "xlsx").glob("*.xlsx")))
    assert sum(len(p.read_text(encoding="utf-8").splitlines()) - 1 for p in rosters) == 2_000


def test_the_whole_city_directory_has_luoyang_s_size() -> None:
    """The directory alone at scale 1 (cheap): 1,000 communities, 3,000 units, 15 levels."""
    whole = citygen.City(scale=1, seed=1, campaign=citygen.CAMPAIGN, counts=citygen.counts(1))
    citygen._directory(whole)
    rows = [r for _, r in directory_file.parse(_directory_csv(whole))]
    kinds = Counter(r["kind"] for r in rows)

    assert kinds["district"] == 14 and kinds["community"] == 1_000 and kinds["unit"] == 3_000
    assert {r["parent_code"] for r in rows if r["kind"] == "district"} == {"410300"}
    assert len({r["code"] for r in rows}) == len(rows)
    assert len({r["name"] for r in rows if r["kind"] == "community"}) == 1_000
    assert sum(r["level"] == "city" for r in rows if r["kind"] == "unit") == 600


def _directory_csv(city: Any) -> bytes:
    columns = citygen.DIRECTORY_COLUMNS
    return citygen.csv_bytes(
        [columns, *([r[k] for k in columns] for r in citygen.directory_rows(city))]
    )


# --- members ----------------------------------------------------------------------------------


def test_every_id_number_and_mobile_is_valid_and_unique(city: Any) -> None:
    members = city.members
    for today in (START, date.today()):
        assert all(rules.id_number(m.id_number, today) == m.id_number for m in members)
    assert all(rules.mobile(m.phone) == m.phone for m in members)
    assert all(rules.name(m.name) == m.name for m in members)
    assert all(rules.email(m.email) == m.email for m in members if m.email)
    assert len({m.id_number for m in members}) == len(members)
    assert len({m.phone for m in members}) == len(members)
    assert sum(m.is_leader_cadre for m in members) > 0
    assert any("·" in m.name for m in citygen.generate(0.05, seed=1).members)


def test_the_member_bodies_are_what_post_members_takes(written: Path) -> None:
    for row in _jsonl(written / "members.jsonl"):
        body = citygen.api_body("members", row)
        MemberIn.model_validate(body)
        assert body["consent"] is True and set(body["availability"]) <= set(AVAILABILITY)


# --- the product's readers --------------------------------------------------------------------


def test_the_directory_csv_loads_with_the_product_s_parser(written: Path) -> None:
    rows = [r for _, r in directory_file.parse((written / "directory.csv").read_bytes())]
    codes = {r["kind"]: set() for r in rows}
    for r in rows:
        codes[r["kind"]].add(r["code"])

    assert {r["code"]: r["name"] for r in rows if r["kind"] == "district"} == {
        code: name for code, name, _ in citygen.DISTRICTS
    }
    assert all(r["parent_code"] in codes["district"] for r in rows if r["kind"] == "street")
    assert all(r["parent_code"] in codes["street"] for r in rows if r["kind"] == "community")
    assert all(r["code"][:9] == r["parent_code"] for r in rows if r["kind"] == "community")
    for unit in (r for r in rows if r["kind"] == "unit"):
        assert unit["community_code"] in codes["community"]
        assert unit["contact_community_code"] in codes["community"] | {""}
        city_level = unit["level"] == "city"
        assert (unit["parent_code"] == "410300") == city_level
        assert city_level or unit["parent_code"] in codes["district"]
    assert {directory_file.district_of(r) for r in rows} == {"410300"} | codes["district"]


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_every_roster_row_passes_the_product_s_roster_validation(written: Path, kind: str) -> None:
    rows = [r for _, r in directory_file.parse((written / "directory.csv").read_bytes())]
    places = ParsedDirectory(rows)
    digests: set[str] = set()
    landed = 0
    for path in sorted((written / "rosters" / kind).glob(f"*.{kind}")):
        lay, table = open_table(path.read_bytes())
        for number, row in table:
            checked = check_row(number, row, lay, path.stem, places, START, SEALER)
            assert checked.errors == [] and checked.values is not None, (path.name, number)
            assert checked.values.unit.code == path.stem
            assert checked.digest is not None and checked.digest not in digests
            digests.add(checked.digest)
            landed += 1

    assert landed == 2_000


def test_the_needs_and_projects_lists_pass_the_product_s_upload_checks(written: Path) -> None:
    for folder, columns, check in (
        ("needs", NEED_COLUMNS, check_need),
        ("projects", PROJECT_COLUMNS, check_project),
    ):
        total = 0
        for path in sorted((written / folder).glob("*.csv")):
            for _, row in read_table(path.read_bytes(), columns).rows:
                assert check(row)[1] == [], (path.name, row)
                total += 1
        assert total == len(_jsonl(written / f"{folder}.jsonl"))
    for row in _jsonl(written / "needs.jsonl"):
        body = citygen.api_body("needs", row)
        assert check_need(NeedIn.model_validate(body).model_dump())[1] == []
    for row in _jsonl(written / "projects.jsonl"):
        body = citygen.api_body("projects", row)
        assert check_project(ProjectIn.model_validate(body).model_dump())[1] == []


# --- teams, wishes, records -------------------------------------------------------------------


@pytest.fixture(scope="module")
def registered(written: Path) -> dict[str, set[str]]:
    """Member ref → the communities the member is registered in (unit's, residence,
    the unit's contact community), from the directory and the members file."""
    rows = [r for _, r in directory_file.parse((written / "directory.csv").read_bytes())]
    units = {r["code"]: r for r in rows if r["kind"] == "unit"}
    found = {}
    for m in _jsonl(written / "members.jsonl"):
        unit = units[m["unit_code"]]
        codes = {unit["community_code"], m["residence_community_code"]}
        found[m["ref"]] = codes | ({unit["contact_community_code"]} - {""})
    return found


def test_teams_and_their_members_are_registered_in_the_team_s_community(
    written: Path, registered: dict[str, set[str]]
) -> None:
    ids = {ref: str(uuid.uuid4()) for ref in registered}
    joined: Counter[str] = Counter()
    for team in _jsonl(written / "teams.jsonl"):
        TeamIn.model_validate(citygen.api_body("teams", team, ids))
        people = [team["leader_member_ref"], *team["member_refs"]]
        assert all(team["community_code"] in registered[r] for r in people if r)
        joined.update(team["member_refs"])

    assert joined and max(joined.values()) == 1  # each member joins one team at most


def test_wishes_are_what_post_wishes_takes_and_claimed_by_registered_members(
    written: Path, registered: dict[str, set[str]]
) -> None:
    outcomes = Counter()
    for wish in _jsonl(written / "wishes.jsonl"):
        body = WishIn.model_validate(citygen.api_body("wishes", wish))
        assert body.deadline is not None and START <= body.deadline <= END
        if wish["claimer_ref"]:
            assert wish["community_code"] in registered[wish["claimer_ref"]]
        assert (wish["outcome"] in citygen.CLAIMED) == bool(wish["claimer_ref"])
        outcomes[wish["outcome"]] += 1

    assert outcomes["confirmed"] > outcomes["published"] > 0


def test_records_are_valid_in_order_registered_and_never_overlap(
    written: Path, registered: dict[str, set[str]]
) -> None:
    ids = {ref: str(uuid.uuid4()) for ref in registered}
    spans: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    previous = ("", "")
    for row in _jsonl(written / "activities.jsonl"):
        body = RecordIn.model_validate(citygen.api_body("activities", row, ids))
        record = records.RecordIn(
            member_id=body.member_id, kind=body.kind, community_code=body.community_code,
            day=body.date, hours=body.hours, start=body.start_time, end=body.end_time,
        )  # fmt: skip
        hours, starts, ends, errors = records.check_time(record, (START, END), END)
        assert errors == [] and hours == row["hours"] and starts and ends
        assert body.kind in ("home_visit", "community_activity", "policy_talk")
        assert row["community_code"] in registered[row["member_ref"]]
        assert (row["date"], row["start_time"]) >= previous
        previous = (row["date"], row["start_time"])
        spans[row["member_ref"]].append((starts, ends))
        assert (row["outcome"] == "returned") == bool(row["reason"])
    for taken in spans.values():
        taken.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(taken))
    assert len(spans) < len(registered)  # some members record nothing
