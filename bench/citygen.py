"""A deterministic Luoyang-scale city for benchmarks (issue 15, "City scale, measured").

At ``--scale 1``: Luoyang's 14 county-level divisions plus the city level (410300, with
its city-level units: 15 in all), about 1,000 communities under about 125 streets and
townships, 3,000 units, 200,000 members with valid, unique ID numbers and mobiles, 10,000
needs, 4,000 projects, 2,000 teams, 50,000 micro-wishes and 1,000,000 service records.
Every count but the divisions scales linearly with ``--scale`` (at least one of each; at
least one community, one street and one county-level unit per district, and one
city-level unit). The same seed and scale give byte-identical files.

    .venv/bin/python bench/citygen.py --scale 0.01 --seed 1 --out /tmp/city
        [--no-xlsx] [--campaign-start 2016-06-26] [--campaign-end 2016-07-31]

What it writes under ``--out``, each in a format the product's own import paths take:

- ``directory.csv`` — ``servicemonth directory load FILE`` / ``POST /api/v1/directory``
  (the columns of ``services/registration/data/sample_directory.csv``). No district row
  for 410300 (as in the sample): the city level is the parent of the districts and of
  the city-level units, not a district.
- ``rosters/csv/<unit>.csv`` and ``rosters/xlsx/<unit>.xlsx`` — one 花名册 per unit
  (``servicemonth roster import FILE --unit <unit>``, ``POST /api/v1/rosters``), the
  Chinese headers of ``services.registration.rosters.COLUMNS``; every row is valid (about
  3% write a 专长 word outside the skills list: the row lands with a note, as people do).
- ``members.jsonl`` — the same members as ``POST /api/v1/members`` bodies (with
  ``unit_code``, ``availability`` and ``consent``), plus ``ref`` (``M0000001``) that the
  other files use for a member.
- ``needs/<community>.csv``, ``projects/<community>.csv`` — the lists
  ``POST /api/v1/communities/{code}/needs/upload`` and ``/projects/upload`` take;
  ``needs.jsonl``, ``projects.jsonl`` — the same rows as JSON bodies of
  ``POST /api/v1/communities/{code}/needs`` and ``/projects`` plus ``community_code``.
- ``teams.jsonl`` — ``POST /api/v1/communities/{code}/teams`` bodies plus
  ``community_code``, ``leader_member_ref`` (for ``leader_member_id``) and
  ``member_refs``: who joins it (``POST /api/v1/teams/{id}/members``).
- ``wishes.jsonl`` — ``POST /api/v1/wishes`` bodies plus where the wish ends up:
  ``outcome`` (a wish state), ``claimer_ref`` and ``rating``.
- ``activities.jsonl`` — ``POST /api/v1/activities`` bodies in time order, with
  ``member_ref`` for ``member_id``, plus ``outcome`` (``verified``, ``returned`` with a
  ``reason``, or left ``submitted``). Every record lies in a community where its member
  is registered (unit, residence or contact community), inside the campaign window, and
  no two records of a member overlap. Submit them with the clock at or after the record's
  day (the product refuses a record in the future).

Teams' members, wish claims and records need the member's registration in that community
confirmed (报到) first; wish deadlines lie in the second half of the campaign, so collect
and publish wishes before them.
- ``manifest.json`` — seed, scale, campaign window and the counts.

Time (one core of a busy 2-core machine): scale 0.05 takes 1.9–2.5 s, of which 1.2–1.7 s
are the 150 xlsx rosters (openpyxl, without lxml); about 0.8 s with ``--no-xlsx``. Every
step is linear, so scale 1 should take 40–50 s (15–17 s with ``--no-xlsx``) and about
0.5 GB of memory (the activities are streamed, not held).

:func:`api_body` turns a JSONL row into the request body, given the member ids the
service assigned (``ref`` → id). A benchmark may also skip the files and call
:func:`generate`, then the row functions (:func:`directory_rows`, :func:`roster_rows`,
:func:`needs`, :func:`projects`, :func:`teams`, :func:`wishes`, :func:`activities`).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import re
import time
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.writer.excel import ExcelWriter

from services.registration.rosters import COLUMNS, TEXT_FIELDS
from services.registration.rules import check_character
from shared.vocabulary import (
    AVAILABILITY,
    AVAILABILITY_LABELS,
    SKILL_SYNONYMS,
    SKILLS,
    TARGET_CATEGORIES,
)

CITY = "410300"
#: Luoyang's current county-level divisions: code, name, weight (about its share of the
#: city's communities and units; the urban districts have more).
DISTRICTS: tuple[tuple[str, str, int], ...] = (
    ("410302", "老城区", 60),
    ("410303", "西工区", 90),
    ("410304", "瀍河回族区", 50),
    ("410305", "涧西区", 110),
    ("410307", "偃师区", 80),
    ("410308", "孟津区", 70),
    ("410311", "洛龙区", 120),
    ("410323", "新安县", 60),
    ("410324", "栾川县", 50),
    ("410325", "嵩县", 50),
    ("410326", "汝阳县", 40),
    ("410327", "宜阳县", 60),
    ("410328", "洛宁县", 50),
    ("410329", "伊川县", 60),
)
URBAN = ("410302", "410303", "410304", "410305", "410311")  # where city-level units sit
#: What scale 1 holds (docs: issue 15); divisions are always all of them.
TARGETS: dict[str, int] = {
    "communities": 1_000,
    "units": 3_000,
    "members": 200_000,
    "needs": 10_000,
    "projects": 4_000,
    "teams": 2_000,
    "wishes": 50_000,
    "activities": 1_000_000,
}
CITY_UNIT_SHARE = 0.2  # of the units, city-level (市直单位)
COMMUNITIES_PER_STREET = 8
CAMPAIGN = (date(2016, 6, 26), date(2016, 7, 31))  # the default of shared/config.py
#: A record's start times: three slots a day, far enough apart that no two records of a
#: member overlap (a record lasts at most 3 hours).
SLOTS = ("09:00", "14:30", "19:00")

# --- words the names are made of (data values, so in Chinese) ------------------------------

PLACES = (
    "王城", "唐宫", "金谷", "长安", "青岛", "开元", "牡丹", "龙门", "白马", "洛浦", "周公",
    "丽景", "定鼎", "九都", "中州", "凯旋", "天津", "珠江", "南昌", "西苑", "东花", "春都",
    "太康", "安乐", "关林", "邙山", "伊滨", "瀛洲", "翠云", "辛店", "古城", "望春", "建业",
    "文化", "民主", "和平", "永安", "红山", "华山", "嵩山", "启明", "东关", "西关", "南关",
    "北窑", "史家", "杨湾", "谷水", "工农", "五女", "孙旗", "涧河", "洛北", "道北", "邙岭",
    "同乐", "新华", "兴隆", "滨河", "翠微",
)  # fmt: skip
PLACE_TAILS = (
    "", "东", "西", "南", "北", "中", "新", "一", "二", "三", "花园", "苑", "里", "路", "街", "桥",
    "园", "东区", "西区", "新村", "家园", "小区",
)  # fmt: skip
UNIT_WORDS = (
    "发展和改革", "教育", "科技", "工业和信息化", "民政", "司法", "财政", "人力资源和社会保障",
    "自然资源", "生态环境", "住房和城乡建设", "交通运输", "水利", "农业农村", "商务",
    "文化广电和旅游", "卫生健康", "退役军人事务", "应急管理", "审计", "市场监督管理", "统计",
    "医疗保障", "城市管理",
    "税务", "供电", "供水", "公路", "邮政", "档案", "气象", "机关事务", "信访", "粮食和物资储备",
)  # fmt: skip
UNIT_KINDS = (
    "局", "中心", "服务站", "管理所", "办公室", "公司", "委员会", "事务中心", "监测站", "研究院",
    "执法大队", "培训中心",
)  # fmt: skip
SCHOOLS = ("中学", "小学", "实验学校", "职业技术学校")
SURNAMES = (
    "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢"
    "蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟"
)
COMPOUND_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "司徒")
GIVEN = (
    "建国秀英志强丽华海燕文博春梅晓东玉兰新民红霞国庆伟芳娜敏静磊军洋勇艳杰涛明超霞平刚桂英"
    "鹏辉玲华飞鑫波斌宇浩凯健俊帆帅旭宁琳雪婷倩颖佳欣怡思晨阳瑞泽昊然嘉睿诗雨梓萱子涵"
)
MINORITY = ("阿依古丽", "买买提", "艾力", "古丽娜尔", "热依拉", "吐尔逊", "帕提古丽", "努尔")
MOBILE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152",
    "155", "156", "157", "158", "159", "176", "177", "180", "181", "182", "183", "185",
    "186", "187", "188", "189", "199",
)  # fmt: skip
#: Where members were born (the ID number's region): mostly Luoyang, old codes included
#: (410306 吉利区, 410322 孟津县, 410381 偃师市), some Henan, a few other provinces.
BIRTH_REGIONS = (
    *(code for code, _, _ in DISTRICTS), "410306", "410322", "410381",
    "410102", "410105", "410402", "410502", "410702", "411102", "411302", "411702",
    "420102", "610102", "140105", "370102", "130102", "320102", "110105", "310101",
)  # fmt: skip
BIRTH_WEIGHTS = (*(5,) * 17, *(2,) * 8, *(1,) * 8)
OWN_WORDS = ("摄影", "驾驶", "烹饪", "园艺", "手工")  # map to no skill: a roster note
NEEDS_TEMPLATES: tuple[tuple[str, str | None, str | None], ...] = (
    ("空巢老人陪伴", "空巢老人", None),
    ("独居老人定期探访", "空巢老人", "助老服务"),
    ("老年人健康义诊", "空巢老人", "医疗护理"),
    ("留守儿童课业辅导", "留守儿童", "教育辅导"),
    ("留守儿童心理关爱", "留守儿童", "心理疏导"),
    ("残障人士康复陪护", "残障人士", "医疗护理"),
    ("困难家庭家电维修", "困难党员和群众", "家电维修"),
    ("困难群众法律援助", "困难党员和群众", "法律咨询"),
    ("下岗职工再就业指导", "下岗职工", "就业指导"),
    ("随迁子女暑期托管", "外来务工人员及随迁子女", None),
    ("老旧小区水电检修", None, "水电维修"),
    ("邻里纠纷调解", None, "矛盾调解"),
    ("社区电脑培训班", "其他", "信息技术"),
)
PROJECT_TEMPLATES: tuple[tuple[str, str, str | None], ...] = (
    ("文明创建", "文明楼院创建", "文明创建"),
    ("治安巡逻", "平安小区夜间巡逻", "治安巡逻"),
    ("环境卫生", "清洁家园", "环境卫生"),
    ("政策宣讲", "党的政策进万家", "政策宣讲"),
    ("文体活动", "广场文艺汇演", "文艺演出"),
    ("关爱帮扶", "一对一结对帮扶", None),
    ("其他", "便民服务日", None),
)
SCHEDULES = ("每周六上午", "每周三晚上", "每周日全天", "工作日下午", "每月第一个周末")
WISHES = (
    ("一台收音机", None), ("一套课外书", "教育辅导"), ("修好漏水的水龙头", "水电维修"),
    ("陪老人去一次医院", "医疗护理"), ("一副老花镜", None), ("一次免费理发", None),
    ("学会用智能手机", "信息技术"), ("一份法律咨询", "法律咨询"), ("辅导暑假作业", "教育辅导"),
    ("修理旧电视机", "家电维修"), ("一幅春联", "书法绘画"), ("一次心理谈话", "心理疏导"),
)  # fmt: skip
NOTES = ("走访独居老人", "参加社区清洁活动", "宣讲惠民政策", "协助社区巡逻", "入户了解民情")
RETURN_REASONS = ("时长与活动安排不符", "请补充服务内容", "不在本社区的服务")
WISH_OUTCOMES = (
    ("published", 15), ("claimed", 5), ("fulfilled", 5), ("confirmed", 50),
    ("evaluated", 20), ("rejected", 2), ("withdrawn", 1), ("expired", 2),
)  # fmt: skip
CLAIMED = frozenset({"claimed", "fulfilled", "confirmed", "evaluated"})


# --- the city --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Street:
    code: str  # 9 digits
    name: str


@dataclass(frozen=True, slots=True)
class Community:
    code: str  # 12 digits: the street's 9 + 3
    name: str
    phone: str
    weight: float  # how many people live there, relatively

    @property
    def district(self) -> str:
        return self.code[:6]


@dataclass(frozen=True, slots=True)
class Unit:
    code: str
    name: str
    level: str  # city or county
    parent_code: str  # 410300 for a city-level unit, else its district
    community_code: str
    contact_community_code: str | None


@dataclass(frozen=True, slots=True)
class Member:
    ref: str
    name: str
    id_number: str
    phone: str
    email: str | None
    unit_code: str
    residence_community_code: str
    skills: str  # free text, as a roster's 专长 cell holds it
    availability: tuple[str, ...]
    is_leader_cadre: bool
    communities: tuple[str, ...]  # registered in: unit's, residence, unit's contact one

    def skill_words(self) -> list[str]:
        """专长 as the API's list of free words."""
        return [w for w in re.split(r"[、,，\s]+", self.skills) if w]


@dataclass
class City:
    """The directory and the members; the rest is drawn from them on demand."""

    scale: float
    seed: int
    campaign: tuple[date, date]
    counts: dict[str, int]
    streets: dict[str, list[Street]] = field(default_factory=dict)  # by district
    communities: list[Community] = field(default_factory=list)
    units: list[Unit] = field(default_factory=list)
    members: list[Member] = field(default_factory=list)  # ordered by unit

    def registrants(self) -> dict[str, list[int]]:
        """Community → indices of the members registered there, in member order."""
        found: dict[str, list[int]] = {c.code: [] for c in self.communities}
        for index, member in enumerate(self.members):
            for code in member.communities:
                found[code].append(index)
        return found


def counts(scale: float) -> dict[str, int]:
    """How many of each the scale gives (at least one; districts need one each)."""
    if not 0 < scale <= 1:
        raise ValueError("scale must lie in (0, 1]")
    found = {k: max(1, round(v * scale)) for k, v in TARGETS.items()}
    found["communities"] = max(found["communities"], len(DISTRICTS))
    found["units"] = max(found["units"], len(DISTRICTS) + 1)
    return found


def apportion(total: int, weights: Sequence[float], minimum: int = 0) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainder), each at least
    ``minimum``; deterministic."""
    shares = [minimum] * len(weights)
    rest = total - minimum * len(weights)
    if rest < 0:
        raise ValueError(f"{total} is less than {minimum} × {len(weights)}")
    whole = sum(weights)
    exact = [rest * w / whole for w in weights]
    for i, x in enumerate(exact):
        shares[i] += int(x)
    left = total - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - int(exact[i])), i))
    for i in order[:left]:
        shares[i] += 1
    return shares


def _rng(seed: int, part: str) -> random.Random:
    """One stream per part, so a change in one part leaves the others' values alone
    (a str seed is hashed with SHA-512: the same on every run and machine)."""
    return random.Random(f"citygen/{seed}/{part}")


def _unique_names(rng: random.Random, heads: Sequence[str], tails: Sequence[str]) -> list[str]:
    combos = [h + t for h in heads for t in tails]
    rng.shuffle(combos)
    return combos


def generate(scale: float = 0.01, seed: int = 1, campaign: tuple[date, date] = CAMPAIGN) -> City:
    """The directory and the members for ``scale`` and ``seed``."""
    city = City(scale=scale, seed=seed, campaign=campaign, counts=counts(scale))
    _directory(city)
    _members(city)
    return city


def _directory(city: City) -> None:
    rng = _rng(city.seed, "directory")
    n = city.counts
    weights = [w for _, _, w in DISTRICTS]
    per_district = apportion(n["communities"], weights, minimum=1)
    names = iter(_unique_names(rng, PLACES, PLACE_TAILS))
    street_names = iter(_unique_names(rng, PLACES, ("", "新", "东", "西", "南", "北")))
    by_district: dict[str, list[Community]] = {}
    for (district, _, _), count in zip(DISTRICTS, per_district, strict=True):
        streets_here = max(1, round(count / COMMUNITIES_PER_STREET))
        urban = district in URBAN
        streets = []
        for s in range(streets_here):
            # counties: a couple of 街道 (0xx), then 镇 (1xx)
            kind = "街道" if urban or s < 2 else "镇"
            number = s + 1 if kind == "街道" else 100 + s - 1
            streets.append(Street(f"{district}{number:03d}", next(street_names) + kind))
        city.streets[district] = streets
        by_district[district] = []
        sizes = apportion(count, [1.0] * streets_here)
        for street, size in zip(streets, sizes, strict=True):
            for c in range(size):
                code = f"{street.code}{c + 1:03d}"
                phone = f"0379-6{rng.randrange(10**6, 10**7)}"
                weight = rng.lognormvariate(0, 0.5) * (1.5 if urban else 1.0)
                community = Community(code, next(names) + "社区", phone, weight)
                by_district[district].append(community)
                city.communities.append(community)
    # units: a share at the city level (in the urban districts), the rest by district
    city_units = max(1, min(round(n["units"] * CITY_UNIT_SHARE), n["units"] - len(DISTRICTS)))
    county_units = apportion(n["units"] - city_units, weights, minimum=1)
    urban_communities = [c for d in URBAN for c in by_district[d]]
    unit_names: set[str] = set()

    def unit_name(prefix: str) -> str:
        for _ in range(100):
            if rng.random() < 0.15:
                name = f"{prefix}第{rng.randint(1, 99)}{rng.choice(SCHOOLS)}"
            else:
                name = prefix + rng.choice(UNIT_WORDS) + rng.choice(UNIT_KINDS)
            if name not in unit_names:
                break
        else:
            name = f"{prefix}{rng.choice(UNIT_WORDS)}{len(unit_names)}号服务中心"
        unit_names.add(name)
        return name

    def contact() -> str | None:  # 联系帮扶社区: some units help a community elsewhere
        return rng.choice(city.communities).code if rng.random() < 0.4 else None

    groups = [(CITY, "洛阳市", city_units, urban_communities)]
    groups += [
        (d, name, k, by_district[d])
        for (d, name, _), k in zip(DISTRICTS, county_units, strict=True)
    ]
    for parent, prefix, k, places in groups:
        if k > 999:
            raise ValueError(f"more than 999 units under {parent}")
        for u in range(k):
            home = rng.choice(places)
            other = contact()
            city.units.append(
                Unit(
                    code=f"U{parent}{u + 1:03d}",
                    name=unit_name(prefix),
                    level="city" if parent == CITY else "county",
                    parent_code=parent,
                    community_code=home.code,
                    contact_community_code=other if other != home.code else None,
                )
            )


def _person_name(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.002:  # a minority name: parts joined by U+00B7
        first, second = rng.sample(MINORITY, 2)
        return f"{first}·{second}"
    surname = rng.choice(COMPOUND_SURNAMES) if roll < 0.01 else rng.choice(SURNAMES)
    return surname + "".join(rng.choices(GIVEN, k=1 if rng.random() < 0.35 else 2))


def _skills_text(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.15:
        return ""
    words = rng.sample(SKILLS, rng.randint(1, 3))
    if roll < 0.4:  # what people write: 律师, 唱歌, 电脑 …
        words[0] = rng.choice(tuple(SKILL_SYNONYMS))
    if roll > 0.97:
        words.append(rng.choice(OWN_WORDS))
    return rng.choice(("、", "、", ",", "，", " ")).join(words)


def _members(city: City) -> None:
    rng = _rng(city.seed, "members")
    total = city.counts["members"]
    start = city.campaign[0]
    units = city.units
    sizes = [rng.paretovariate(1.6) for _ in units]
    per_unit = apportion(total, sizes, minimum=1 if total >= len(units) else 0)
    codes = [c.code for c in city.communities]
    cum_all = _cumulative(c.weight for c in city.communities)
    local: dict[str, tuple[list[str], list[float]]] = {}
    for district, _, _ in DISTRICTS:
        here = [c for c in city.communities if c.district == district]
        local[district] = ([c.code for c in here], _cumulative(c.weight for c in here))
    ids: set[str] = set()
    phones: set[str] = set()
    regions = list(BIRTH_REGIONS)
    cum_regions = _cumulative(BIRTH_WEIGHTS)
    youngest, oldest = 22 * 365 + 6, 59 * 365  # age on the campaign's first day, in days
    number = 0
    for unit, size in zip(units, per_unit, strict=True):
        near_codes, near_cum = local[unit.community_code[:6]]
        for _ in range(size):
            number += 1
            cadre = rng.random() < 0.03
            while True:
                days = rng.randint(max(youngest, 35 * 365) if cadre else youngest, oldest)
                born = start - timedelta(days=days)
                region = rng.choices(regions, cum_weights=cum_regions)[0]
                body = f"{region}{born:%Y%m%d}{rng.randrange(1000):03d}"
                if body not in ids:
                    ids.add(body)
                    break
            while True:
                phone = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
                if phone not in phones:
                    phones.add(phone)
                    break
            if rng.random() < 0.65:
                residence = rng.choices(near_codes, cum_weights=near_cum)[0]
            else:
                residence = rng.choices(codes, cum_weights=cum_all)[0]
            registered = [unit.community_code, residence]
            if unit.contact_community_code:
                registered.append(unit.contact_community_code)
            city.members.append(
                Member(
                    ref=f"M{number:07d}",
                    name=_person_name(rng),
                    id_number=body + check_character(body),
                    phone=phone,
                    email=f"m{number:07d}@example.cn" if rng.random() < 0.25 else None,
                    unit_code=unit.code,
                    residence_community_code=residence,
                    skills=_skills_text(rng),
                    availability=tuple(sorted(rng.sample(AVAILABILITY, rng.randint(1, 2)))),
                    is_leader_cadre=cadre,
                    communities=tuple(dict.fromkeys(registered)),
                )
            )


def _cumulative(weights: Iterable[float]) -> list[float]:
    total = 0.0
    found = []
    for w in weights:
        total += w
        found.append(total)
    return found


# --- rows ------------------------------------------------------------------------------------

DIRECTORY_COLUMNS = (
    "kind", "code", "name", "parent_code", "level", "community_code",
    "contact_community_code", "valid_from", "valid_to", "phone",
)  # fmt: skip


def directory_rows(city: City) -> Iterator[dict[str, str]]:
    """The directory file's rows (``DIRECTORY_COLUMNS``): districts, streets, communities,
    units, as ``services/registration/data/sample_directory.csv`` has them."""
    blank = dict.fromkeys(DIRECTORY_COLUMNS, "")
    for code, name, _ in DISTRICTS:
        yield blank | {"kind": "district", "code": code, "name": name, "parent_code": CITY}
    for district, _, _ in DISTRICTS:
        for street in city.streets[district]:
            yield blank | {
                "kind": "street", "code": street.code, "name": street.name,
                "parent_code": district,
            }  # fmt: skip
    for c in city.communities:
        yield blank | {
            "kind": "community", "code": c.code, "name": c.name, "parent_code": c.code[:9],
            "valid_from": "2010-01-01", "phone": c.phone,
        }  # fmt: skip
    for u in city.units:
        yield blank | {
            "kind": "unit", "code": u.code, "name": u.name, "parent_code": u.parent_code,
            "level": u.level, "community_code": u.community_code,
            "contact_community_code": u.contact_community_code or "",
        }  # fmt: skip


def roster_header() -> list[str]:
    return [header for _, header in COLUMNS]


def roster_cells(member: Member) -> list[str]:
    """One 花名册 row, in the order of ``rosters.COLUMNS``."""
    values = {
        "name": member.name,
        "id_number": member.id_number,
        "phone": member.phone,
        "email": member.email or "",
        "residence_community_code": member.residence_community_code,
        "skills": member.skills,
        "is_leader_cadre": "是" if member.is_leader_cadre else "否",
    }
    return [values[name] for name, _ in COLUMNS]


def rosters(city: City) -> Iterator[tuple[str, list[Member]]]:
    """(unit code, its members) for every unit with members, in unit order."""
    current: list[Member] = []
    for member in city.members:
        if current and current[0].unit_code != member.unit_code:
            yield current[0].unit_code, current
            current = []
        current.append(member)
    if current:
        yield current[0].unit_code, current


def roster_rows(city: City, unit_code: str) -> list[list[str]]:
    """A unit's roster: the header, then a row per member."""
    rows = [roster_header()]
    rows += [roster_cells(m) for m in city.members if m.unit_code == unit_code]
    return rows


def member_body(member: Member) -> dict[str, Any]:
    """``POST /api/v1/members`` with its ``ref``."""
    return {
        "ref": member.ref,
        "name": member.name,
        "id_number": member.id_number,
        "phone": member.phone,
        "email": member.email,
        "unit_code": member.unit_code,
        "residence_community_code": member.residence_community_code,
        "skills": member.skill_words(),
        "availability": list(member.availability),
        "is_leader_cadre": member.is_leader_cadre,
        "consent": True,
    }


def _window(rng: random.Random, campaign: tuple[date, date]) -> tuple[str, str]:
    length = (campaign[1] - campaign[0]).days
    first = rng.randint(0, length // 2)
    last = rng.randint(first, length)
    return str(campaign[0] + timedelta(days=first)), str(campaign[0] + timedelta(days=last))


def _spread(city: City, what: str) -> list[tuple[Community, int]]:
    """How many of ``what`` each community publishes (by its weight)."""
    communities = city.communities
    total = city.counts[what]
    minimum = 1 if total >= len(communities) else 0
    per = apportion(total, [c.weight for c in communities], minimum)
    return [(c, k) for c, k in zip(communities, per, strict=True) if k]


def needs(city: City) -> Iterator[dict[str, Any]]:
    """需求清单 items: ``POST /api/v1/communities/{code}/needs`` bodies with
    ``community_code`` and a ``ref``."""
    rng = _rng(city.seed, "needs")
    number = 0
    for community, k in _spread(city, "needs"):
        for _ in range(k):
            number += 1
            title, category, skill = rng.choice(NEEDS_TEMPLATES)
            if category is not None and rng.random() < 0.3:
                skill = None  # a category alone is enough
            start, end = _window(rng, city.campaign) if rng.random() < 0.6 else (None, None)
            yield {
                "ref": f"N{number:07d}",
                "community_code": community.code,
                "title": title,
                "required_skill": skill,
                "category": category,
                "volunteers_needed": rng.randint(1, 20),
                "availability": sorted(rng.sample(AVAILABILITY, rng.randint(1, 2))),
                "window_start": start,
                "window_end": end,
            }


def projects(city: City) -> Iterator[dict[str, Any]]:
    """服务项目: ``POST /api/v1/communities/{code}/projects`` bodies with ``community_code``
    and a ``ref``."""
    rng = _rng(city.seed, "projects")
    number = 0
    for community, k in _spread(city, "projects"):
        for _ in range(k):
            number += 1
            kind, title, skill = rng.choice(PROJECT_TEMPLATES)
            yield {
                "ref": f"P{number:07d}",
                "community_code": community.code,
                "kind": kind,
                "title": title,
                "required_skill": skill if rng.random() < 0.5 else None,
                "schedule": rng.choice(SCHEDULES),
                "availability": sorted(rng.sample(AVAILABILITY, rng.randint(1, 2))),
                "capacity": rng.randint(5, 50),
            }


def teams(city: City, registrants: Mapping[str, list[int]] | None = None) -> list[dict[str, Any]]:
    """服务团队: ``POST /api/v1/communities/{code}/teams`` bodies with ``community_code``, a
    ``ref``, ``leader_member_ref`` and ``member_refs`` (about 30% of the members join one
    team of a community they are registered in)."""
    rng = _rng(city.seed, "teams")
    registrants = registrants if registrants is not None else city.registrants()
    found: list[dict[str, Any]] = []
    by_community: dict[str, list[dict[str, Any]]] = {}
    for community, k in _spread(city, "teams"):
        people = registrants[community.code]
        for t in range(k):
            speciality = rng.choice(SKILLS) if rng.random() < 0.8 else None
            leader = rng.choice(people) if people and rng.random() < 0.7 else None
            team: dict[str, Any] = {
                "ref": f"T{len(found) + 1:07d}",
                "community_code": community.code,
                "name": f"{community.name[:-2]}{speciality or '党员'}志愿服务{t + 1}队",
                "speciality": speciality,
                "leader_member_ref": city.members[leader].ref if leader is not None else None,
                "member_refs": [],
            }
            found.append(team)
            by_community.setdefault(community.code, []).append(team)
    for member in city.members:
        choices = [t for code in member.communities for t in by_community.get(code, ())]
        if choices and rng.random() < 0.3:
            rng.choice(choices)["member_refs"].append(member.ref)
    return found


def wishes(
    city: City, registrants: Mapping[str, list[int]] | None = None
) -> Iterator[dict[str, Any]]:
    """微心愿: ``POST /api/v1/wishes`` bodies with a ``ref``, where each ends up
    (``outcome``: a wish state), who claims it (``claimer_ref``, a member registered in
    the community) and ``rating`` (1–5, when evaluated)."""
    rng = _rng(city.seed, "wishes")
    registrants = registrants if registrants is not None else city.registrants()
    outcomes = [o for o, _ in WISH_OUTCOMES]
    cum = _cumulative(w for _, w in WISH_OUTCOMES)
    length = (city.campaign[1] - city.campaign[0]).days
    number = 0
    for community, k in _spread(city, "wishes"):
        people = registrants[community.code]
        for _ in range(k):
            number += 1
            title, category = rng.choice(WISHES)
            outcome = rng.choices(outcomes, cum_weights=cum)[0]
            if outcome in CLAIMED and not people:
                outcome = "published"
            claimer = rng.choice(people) if outcome in CLAIMED else None
            deadline = city.campaign[0] + timedelta(days=rng.randint(length // 2, length))
            yield {
                "ref": f"W{number:07d}",
                "community_code": community.code,
                "title": title,
                "description": f"{community.name}居民的微心愿：{title}",
                "category": category,
                "beneficiary_category": rng.choice(TARGET_CATEGORIES),
                "deadline": str(deadline),
                "outcome": outcome,
                "claimer_ref": city.members[claimer].ref if claimer is not None else None,
                "rating": rng.randint(3, 5) if outcome == "evaluated" else None,
            }


def activities(city: City) -> Iterator[dict[str, Any]]:
    """五个一 service records (home visits, community activities, policy talks) in time
    order: ``POST /api/v1/activities`` bodies with ``member_ref`` for ``member_id``, a
    ``ref``, and the staff's ``outcome`` (``verified``, ``returned`` with ``reason``, or
    ``submitted``). A member's records never overlap (one per slot of :data:`SLOTS`)."""
    rng = _rng(city.seed, "activities")
    days = (city.campaign[1] - city.campaign[0]).days + 1
    slots = days * len(SLOTS)
    members = city.members
    total = min(city.counts["activities"], slots * len(members))
    # a fifth of the members record nothing; the others as keen as a Pareto draw says
    weights = [0.0 if rng.random() < 0.2 else min(rng.paretovariate(2.0), 50.0) for _ in members]
    if not any(weights):
        weights[0] = 1.0
    per = _capped(apportion(total, weights), weights, slots)
    buckets: list[list[int]] = [[] for _ in range(slots)]
    for index, k in enumerate(per):
        for slot in rng.sample(range(slots), k) if k else ():
            buckets[slot].append(index)
    kinds = ("home_visit", "community_activity", "policy_talk")
    number = 0
    for slot, bucket in enumerate(buckets):
        day = str(city.campaign[0] + timedelta(days=slot // len(SLOTS)))
        start = SLOTS[slot % len(SLOTS)]
        hour, minute = int(start[:2]), int(start[3:])
        for index in sorted(bucket):
            number += 1
            member = members[index]
            roll = rng.random()
            if roll < 0.4:
                community = member.communities[0]  # the unit's community
            elif roll < 0.9 or len(member.communities) < 3:
                community = member.residence_community_code
            else:
                community = member.communities[2]  # the unit's contact community
            halves = rng.randint(1, 6)  # 0.5 … 3 hours
            end = hour * 60 + minute + halves * 30
            roll = rng.random()
            outcome = "verified" if roll < 0.85 else "returned" if roll < 0.9 else "submitted"
            yield {
                "ref": f"A{number:07d}",
                "member_ref": member.ref,
                "kind": rng.choice(kinds),
                "community_code": community,
                "date": day,
                "hours": halves / 2,
                "start_time": start,
                "end_time": f"{end // 60:02d}:{end % 60:02d}",
                "note": rng.choice(NOTES) if rng.random() < 0.5 else None,
                "outcome": outcome,
                "reason": rng.choice(RETURN_REASONS) if outcome == "returned" else None,
            }


def _capped(per: list[int], weights: list[float], cap: int) -> list[int]:
    """``per`` with nobody over ``cap``; the surplus goes to the others, in member order."""
    surplus = sum(max(0, k - cap) for k in per)
    per = [min(k, cap) for k in per]
    for i in range(len(per)):
        if not surplus:
            break
        if weights[i] and per[i] < cap:
            extra = min(cap - per[i], surplus)
            per[i] += extra
            surplus -= extra
    return per


#: The fields of each JSONL row that the route takes as they are (the rest: ``ref``, the
#: ``*_ref`` fields the caller maps to ids, the outcome fields for later steps).
BODY_FIELDS: dict[str, tuple[str, ...]] = {
    "members": (
        "name", "id_number", "phone", "email", "unit_code", "residence_community_code",
        "skills", "availability", "is_leader_cadre", "consent",
    ),
    "needs": (
        "title", "required_skill", "category", "volunteers_needed", "availability",
        "window_start", "window_end",
    ),
    "projects": ("kind", "title", "required_skill", "schedule", "availability", "capacity"),
    "teams": ("name", "speciality"),
    "wishes": (
        "community_code", "title", "description", "category", "beneficiary_category", "deadline",
    ),
    "activities": ("kind", "community_code", "date", "hours", "start_time", "end_time", "note"),
}  # fmt: skip


def api_body(
    what: str, row: Mapping[str, Any], ids: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The request body for a row of ``what`` (a key of :data:`BODY_FIELDS`); ``ids`` maps
    member refs to the ids the service gave them (activities: ``member_id``; teams:
    ``leader_member_id``)."""
    body = {k: row[k] for k in BODY_FIELDS[what]}
    if what == "activities":
        body["member_id"] = (ids or {})[row["member_ref"]]
    if what == "teams" and row.get("leader_member_ref") and ids is not None:
        body["leader_member_id"] = ids[row["leader_member_ref"]]
    return body


# --- files -----------------------------------------------------------------------------------

NEED_HEADERS = ("标题", "所需专长", "服务对象类别", "所需人数", "服务时间", "开始日期", "结束日期")
NEED_FIELDS = (
    "title", "required_skill", "category", "volunteers_needed", "availability",
    "window_start", "window_end",
)  # fmt: skip
PROJECT_HEADERS = ("项目类型", "项目名称", "所需专长", "时间安排", "服务时间", "人数上限")
PROJECT_FIELDS = ("kind", "title", "required_skill", "schedule", "availability", "capacity")
#: A fixed instant for the workbooks' properties and zip entries, so files are identical.
FIXED_TIME = (2016, 6, 1, 0, 0, 0)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "、".join(AVAILABILITY_LABELS.get(str(v), str(v)) for v in value)
    return str(value)


def csv_bytes(rows: Iterable[Sequence[Any]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def xlsx_bytes(rows: Iterable[Sequence[Any]], sheet_name: str = "花名册") -> bytes:
    """A workbook by openpyxl (write-only; ID, phone and community columns formatted as
    text, as the product's template has them), byte-stable: the document properties and
    the zip entries carry :data:`FIXED_TIME` instead of the time of writing."""
    book = Workbook(write_only=True)
    book.properties.created = book.properties.modified = datetime(*FIXED_TIME)
    sheet = book.create_sheet(sheet_name)
    for number, (name, _) in enumerate(COLUMNS, start=1):
        if name in TEXT_FIELDS:
            sheet.column_dimensions[chr(64 + number)].number_format = "@"
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    # what openpyxl's save_workbook does, less its stamping the time of saving
    ExcelWriter(book, _FixedTimeZip(out, "w", zipfile.ZIP_DEFLATED, allowZip64=True)).save()
    return out.getvalue()


class _FixedTimeZip(zipfile.ZipFile):
    """A zip whose entries all carry :data:`FIXED_TIME`."""

    def writestr(
        self,
        zinfo_or_arcname: str | zipfile.ZipInfo,
        data: Any,
        compress_type: int | None = None,
        compresslevel: int | None = None,
    ) -> None:
        if not isinstance(zinfo_or_arcname, zipfile.ZipInfo):
            zinfo_or_arcname = zipfile.ZipInfo(zinfo_or_arcname, FIXED_TIME)
            zinfo_or_arcname.compress_type = self.compression
            zinfo_or_arcname.external_attr = 0o600 << 16
        super().writestr(zinfo_or_arcname, data, compress_type, compresslevel)

    def write(
        self,
        filename: Any,
        arcname: Any = None,
        compress_type: int | None = None,
        compresslevel: int | None = None,
    ) -> None:
        self.writestr(str(arcname or filename), Path(filename).read_bytes(), compress_type)


def _jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> int:
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
            f.write("\n")
            count += 1
    return count


def _per_community(
    folder: Path, rows: list[dict[str, Any]], headers: Sequence[str], fields: Sequence[str]
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    by_community: dict[str, list[list[str]]] = {}
    for row in rows:
        cells = [_cell_text(row[f]) for f in fields]
        by_community.setdefault(row["community_code"], [list(headers)]).append(cells)
    for code, table in by_community.items():
        (folder / f"{code}.csv").write_bytes(csv_bytes(table))


def write(city: City, out: Path, xlsx: bool = True) -> dict[str, Any]:
    """Write every file under ``out`` (created); return the manifest (also written)."""
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal started
        now = time.perf_counter()
        timings[name] = round(now - started, 3)
        started = now

    (out / "directory.csv").write_bytes(
        csv_bytes(
            [DIRECTORY_COLUMNS, *([r[k] for k in DIRECTORY_COLUMNS] for r in directory_rows(city))]
        )
    )
    lap("directory")
    (out / "rosters" / "csv").mkdir(parents=True, exist_ok=True)
    if xlsx:
        (out / "rosters" / "xlsx").mkdir(parents=True, exist_ok=True)
    roster_files = 0
    for unit_code, members in rosters(city):
        table = [roster_header(), *(roster_cells(m) for m in members)]
        (out / "rosters" / "csv" / f"{unit_code}.csv").write_bytes(csv_bytes(table))
        roster_files += 1
    lap("rosters_csv")
    if xlsx:
        for unit_code, members in rosters(city):
            table = [roster_header(), *(roster_cells(m) for m in members)]
            (out / "rosters" / "xlsx" / f"{unit_code}.xlsx").write_bytes(xlsx_bytes(table))
        lap("rosters_xlsx")
    written = {"members": _jsonl(out / "members.jsonl", map(member_body, city.members))}
    lap("members")
    need_rows = list(needs(city))
    project_rows = list(projects(city))
    written["needs"] = _jsonl(out / "needs.jsonl", need_rows)
    written["projects"] = _jsonl(out / "projects.jsonl", project_rows)
    _per_community(out / "needs", need_rows, NEED_HEADERS, NEED_FIELDS)
    _per_community(out / "projects", project_rows, PROJECT_HEADERS, PROJECT_FIELDS)
    lap("needs_projects")
    registrants = city.registrants()
    written["teams"] = _jsonl(out / "teams.jsonl", teams(city, registrants))
    written["wishes"] = _jsonl(out / "wishes.jsonl", wishes(city, registrants))
    lap("teams_wishes")
    written["activities"] = _jsonl(out / "activities.jsonl", activities(city))
    lap("activities")
    manifest = {
        "seed": city.seed,
        "scale": city.scale,
        "campaign": [str(city.campaign[0]), str(city.campaign[1])],
        "divisions": len(DISTRICTS) + 1,
        "districts": len(DISTRICTS),
        "streets": sum(len(s) for s in city.streets.values()),
        "communities": len(city.communities),
        "units": len(city.units),
        "rosters": roster_files,
        "xlsx": xlsx,
        **written,
    }
    (out / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    return {**manifest, "seconds": timings}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.01, help="0.01 … 1 (1: Luoyang)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True, help="the folder to write")
    parser.add_argument("--no-xlsx", action="store_true", help="CSV rosters only (faster)")
    parser.add_argument("--campaign-start", type=date.fromisoformat, default=CAMPAIGN[0])
    parser.add_argument("--campaign-end", type=date.fromisoformat, default=CAMPAIGN[1])
    args = parser.parse_args(argv)
    if not 0 < args.scale <= 1:
        parser.error("--scale must lie in (0, 1]")
    if args.campaign_end < args.campaign_start:
        parser.error("--campaign-end is before --campaign-start")
    started = time.perf_counter()
    cpu = time.process_time()
    city = generate(args.scale, args.seed, (args.campaign_start, args.campaign_end))
    generated = time.perf_counter() - started
    manifest = write(city, args.out, xlsx=not args.no_xlsx)
    seconds = manifest.pop("seconds")
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    for key, value in manifest.items():
        print(f"{key:>12}: {value}")
    steps = ", ".join(f"{k} {v:.2f}" for k, v in seconds.items())
    print(f"generated in {generated:.2f} s, files: {steps}")
    print(f"total {wall:.2f} s wall, {cpu:.2f} s CPU → {args.out}")


if __name__ == "__main__":
    main()
