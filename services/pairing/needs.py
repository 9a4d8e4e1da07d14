"""What a community publishes — 服务对象和需求清单: service targets (residents in need, stored
masked), needs-list items, service projects (服务项目) and service teams (服务团队).

One checker per kind of record serves both the JSON API and the spreadsheet upload, so a
bad value gets the same message whichever way it came; an upload reports it with the row
number the spreadsheet shows, and its good rows land.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import func, select

from services.pairing.models import MemberReplica, Need, Pairing, Project, ServiceTarget, Team
from shared.db import UnitOfWork, commit_in_chunks
from shared.http import Invalid
from shared.pii import redact
from shared.tabular import Table, read_table
from shared.vocabulary import (
    AVAILABILITY,
    PROJECT_KINDS,
    SENSITIVE_CATEGORIES,
    SKILLS,
    TARGET_CATEGORIES,
)

#: Skills that suit a need's category or a project's kind (社区所需，党员所长).
AFFINITY: Mapping[str, frozenset[str]] = {
    "空巢老人": frozenset({"助老服务", "医疗护理", "健康咨询", "心理疏导"}),
    "留守儿童": frozenset({"关爱儿童", "教育辅导", "心理疏导"}),
    "残障人士": frozenset({"医疗护理", "助老服务", "心理疏导"}),
    "困难党员和群众": frozenset({"政策宣讲", "法律咨询", "就业指导"}),
    "下岗职工": frozenset({"就业指导", "法律咨询", "信息技术"}),
    "外来务工人员及随迁子女": frozenset({"教育辅导", "法律咨询", "就业指导"}),
    "文明创建": frozenset({"文明创建", "文艺演出", "书法绘画"}),
    "治安巡逻": frozenset({"治安巡逻", "矛盾调解"}),
    "环境卫生": frozenset({"环境卫生"}),
    "政策宣讲": frozenset({"政策宣讲", "法律咨询"}),
    "文体活动": frozenset({"文艺演出", "书法绘画"}),
    "关爱帮扶": frozenset({"助老服务", "关爱儿童", "心理疏导"}),
}
AVAILABILITY_NAMES = {
    "工作日白天": "weekday_daytime",
    "工作日晚上": "weekday_evening",
    "周末": "weekend",
}
NEED_COLUMNS = {
    "标题": "title", "需求": "title", "需求名称": "title", "所需专长": "required_skill",
    "专长": "required_skill", "服务对象类别": "category", "类别": "category",
    "所需人数": "volunteers_needed", "人数": "volunteers_needed", "服务时间": "availability",
    "开始日期": "window_start", "结束日期": "window_end",
}  # fmt: skip
PROJECT_COLUMNS = {
    "项目类型": "kind", "类型": "kind", "项目名称": "title", "名称": "title",
    "所需专长": "required_skill", "时间安排": "schedule", "服务时间": "availability",
    "人数上限": "capacity", "容量": "capacity",
}  # fmt: skip
Error = dict[str, str]
#: The largest spreadsheet a community may upload.
MAX_BYTES = 10 * 1024 * 1024
#: The namespace of uploaded rows' ids (uuid5 of kind, community, file digest, row number).
UPLOADED = uuid.UUID("5b0e7a64-3f0c-4d8e-9a51-2c7f1e6d9b30")


def affinity(category_or_kind: str | None) -> frozenset[str]:
    return AFFINITY.get(category_or_kind or "", frozenset())


def mask_label(label: str) -> str:
    """A resident as shown anywhere: the first character, then ``*`` (张*)."""
    label = label.strip()
    return label[:1] + "*" if label else ""


def confirmed(communities: list[dict[str, str]]) -> frozenset[str]:
    """The communities of a member replica where the registration is confirmed (报到)."""
    return frozenset(c["code"] for c in communities if c.get("state") == "confirmed")


@dataclass
class Check:
    """Reads one record's fields (JSON values or spreadsheet text), collecting every error."""

    raw: Mapping[str, Any]
    errors: list[Error] = field(default_factory=list)

    def fail(self, name: str, message: str) -> None:
        self.errors.append({"field": name, "message": message})

    def text(self, name: str, limit: int, required: bool = False) -> str | None:
        value = str(self.raw.get(name) or "").strip()
        if required and not value:
            self.fail(name, "is required")
        elif len(value) > limit:
            self.fail(name, f"at most {limit} characters")
        return value or None

    def words(self, name: str, limit: int, required: bool = False) -> str | None:
        """Free text (a title, a schedule) as it is kept and published: any ID number,
        mobile or e-mail address typed into it masked, never stored in clear."""
        value = self.text(name, limit, required)
        return redact(value) if value else value

    def choice(self, name: str, options: tuple[str, ...], required: bool = False) -> str | None:
        value = self.text(name, 60, required)
        if value is not None and value not in options:
            self.fail(name, f"choose from: {'、'.join(options)}")
            return None
        return value

    def number(self, name: str, default: int, high: int) -> int:
        value = self.raw.get(name)
        if value in (None, ""):
            return default
        try:
            number = int(str(value).strip())
        except ValueError:
            number = 0
        if not 1 <= number <= high:
            self.fail(name, f"a whole number from 1 to {high}")
        return number

    def day(self, name: str) -> date | None:
        value = self.raw.get(name)
        if value in (None, "") or isinstance(value, date):
            return value or None
        try:
            return date.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(name, "a date like 2016-07-01")
            return None

    def when(self, name: str) -> list[str]:
        value = self.raw.get(name) or []
        if isinstance(value, str):
            for sep in "、,，;；":
                value = value.replace(sep, " ")
            value = value.split()
        found = [AVAILABILITY_NAMES.get(v, v) for v in value]
        if any(v not in AVAILABILITY for v in found):
            self.fail(
                name, f"choose from: {', '.join(AVAILABILITY)} (或 工作日白天、工作日晚上、周末)"
            )
        return sorted(set(found))


def check_need(raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[Error]]:
    """A needs-list item: a required skill or a category (or both), how many, when."""
    c = Check(raw)
    start, end = c.day("window_start"), c.day("window_end")
    values = {
        "title": c.words("title", 200, required=True),
        "required_skill": c.choice("required_skill", SKILLS),
        "category": c.choice("category", TARGET_CATEGORIES),
        "volunteers_needed": c.number("volunteers_needed", 1, 100),
        "availability": c.when("availability"),
        "window_start": start,
        "window_end": end,
    }
    if not raw.get("required_skill") and not raw.get("category"):
        c.fail("required_skill", "give a required skill or a category")
    if start and end and end < start:
        c.fail("window_end", "ends before it starts")
    return values, c.errors


def check_project(raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[Error]]:
    """A service project: kind, title, optional skill, schedule, capacity."""
    c = Check(raw)
    values = {
        "kind": c.choice("kind", PROJECT_KINDS, required=True),
        "title": c.words("title", 200, required=True),
        "required_skill": c.choice("required_skill", SKILLS),
        "schedule": c.words("schedule", 200),
        "availability": c.when("availability"),
        "capacity": c.number("capacity", 10, 1000),
    }
    return values, c.errors


def publish_target(uow: UnitOfWork, code: str, raw: Mapping[str, Any]) -> ServiceTarget:
    """服务对象 — stored masked; a sensitive category needs the resident's consent."""
    c = Check(raw)
    category = c.choice("category", TARGET_CATEGORIES, required=True)
    label = c.text("label", 60, required=True)
    consent = raw.get("consent") is True
    if category in SENSITIVE_CATEGORIES and not consent:
        c.fail("consent", f"{category} is sensitive: the resident's separate consent is required")
    if c.errors or category is None or label is None:
        raise Invalid("the service target cannot be published", c.errors)
    target = ServiceTarget(
        community_code=code,
        category=category,
        label=mask_label(label),
        sensitive=category in SENSITIVE_CATEGORIES,
        consent=consent,
        created_at=uow.now(),
    )
    uow.session.add(target)
    uow.session.flush()
    return target


def publish_need(uow: UnitOfWork, code: str, raw: Mapping[str, Any]) -> Need:
    """A needs-list item, for a service target of this community if one is named (its
    category then stands for the need's when none is given)."""
    target_id = raw.get("target_id")
    target = uow.session.get(ServiceTarget, target_id) if target_id else None
    if target is not None and target.community_code == code:
        raw = {**raw, "category": raw.get("category") or target.category}
    values, errors = check_need(raw)
    if target_id and (target is None or target.community_code != code):
        errors.append({"field": "target_id", "message": "no such service target here"})
    if errors:
        raise Invalid("the need cannot be published", errors)
    need = Need(community_code=code, target_id=target_id, created_at=uow.now(), **values)
    uow.session.add(need)
    uow.session.flush()
    return need


def publish_project(uow: UnitOfWork, code: str, raw: Mapping[str, Any]) -> Project:
    values, errors = check_project(raw)
    if errors:
        raise Invalid("the project cannot be published", errors)
    project = Project(community_code=code, created_at=uow.now(), **values)
    uow.session.add(project)
    uow.session.flush()
    return project


def publish_team(uow: UnitOfWork, code: str, raw: Mapping[str, Any]) -> Team:
    """服务团队 by speciality; its leader, if named, is a member confirmed here."""
    c = Check(raw)
    name = c.words("name", 100, required=True)
    speciality = c.choice("speciality", SKILLS)
    leader_id = raw.get("leader_member_id")
    leader = uow.session.get(MemberReplica, leader_id) if leader_id else None
    if leader_id and (leader is None or code not in confirmed(leader.communities)):
        c.fail("leader_member_id", "not a member confirmed in this community")
    if c.errors or name is None:
        raise Invalid("the team cannot be published", c.errors)
    team = Team(
        community_code=code,
        name=name,
        speciality=speciality,
        leader_member_id=leader_id,
        created_at=uow.now(),
    )
    uow.session.add(team)
    uow.session.flush()
    return team


Checker = Callable[[Mapping[str, Any]], tuple[dict[str, Any], list[Error]]]
UPLOADS: dict[str, tuple[type[Need] | type[Project], Checker, dict[str, str], tuple[str, ...]]] = {
    "needs": (Need, check_need, NEED_COLUMNS, ("title",)),
    "projects": (Project, check_project, PROJECT_COLUMNS, ("kind", "title")),
}


def too_large(data: bytes) -> None:
    """Refuse (422) a spreadsheet over :data:`MAX_BYTES`."""
    if len(data) > MAX_BYTES:
        raise Invalid("the file is too large", [{"field": "file", "message": "at most 10 MB"}])


def upload(uow: UnitOfWork, code: str, what: str, data: bytes) -> dict[str, Any]:
    """Publish every good row of a spreadsheet; the others come back with their row.

    The whole file is read and checked before anything is written (one that cannot be
    read, lacks a column or has too many rows is refused whole). Then the good rows land
    :data:`shared.db.CHUNK` at a time, a transaction each, so other writers are not held up
    for the whole upload: ``upload`` commits as it goes. A row's id comes from the file
    and its row number, so uploading the same file again adds nothing, and after a crash
    part-way it adds only the rows that had not landed.
    """
    model, check, columns, required = UPLOADS[what]
    table = _open(data, columns, required)
    digest = hashlib.sha256(data).hexdigest()
    rows = rejected = 0
    failures: list[dict[str, Any]] = []
    records: list[Need | Project] = []
    for number, row in table.rows:
        rows += 1
        values, problems = check(row)
        failures += [{"row": number, **p} for p in problems]
        rejected += bool(problems)
        if not problems:
            row_id = uuid.uuid5(UPLOADED, f"{what}/{code}/{digest}/{number}")
            records.append(model(id=row_id, community_code=code, created_at=uow.now(), **values))
    commit_in_chunks(uow, records, lambda chunk: _add_new(uow, model, chunk))
    return {
        "total": rows,
        "accepted": len(records),
        "rejected": rejected,
        "ids": [str(r.id) for r in records],
        "errors": failures,
    }


def _open(data: bytes, columns: dict[str, str], required: tuple[str, ...]) -> Table:
    """The upload's rows; :class:`Invalid` when it cannot be read or lacks a column."""
    try:
        table = read_table(data, columns)
    except Invalid:
        raise
    except Exception as exc:  # a damaged workbook: zip, XML or cell errors
        raise Invalid(f"the file cannot be read ({type(exc).__name__})") from None
    missing = [c for c in required if c not in table.header]
    if missing:
        errors = [
            {"field": c, "message": "column missing from the header (row 1)"} for c in missing
        ]
        raise Invalid("the first row must be the header", errors)
    return table


def _add_new(
    uow: UnitOfWork, model: type[Need] | type[Project], records: list[Need | Project]
) -> None:
    """Add the records not there yet: those of an earlier upload of the same file are."""
    there = set(uow.session.scalars(select(model.id).where(model.id.in_([r.id for r in records]))))
    uow.session.add_all([r for r in records if r.id not in there])
    uow.session.flush()


def paired_counts(uow: UnitOfWork, column: Any, code: str) -> dict[uuid.UUID, int]:
    """Active pairings per need (``Pairing.need_id``) or project of one community."""
    query = (
        select(column, func.count())
        .where(Pairing.community_code == code, Pairing.state == "active", column.is_not(None))
        .group_by(column)
    )
    return {k: n for k, n in uow.session.execute(query).tuples()}
