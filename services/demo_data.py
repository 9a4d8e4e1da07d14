"""Synthetic but valid campaign data for the demo and the tests: members and rosters."""

from __future__ import annotations

import io
import random
from datetime import date
from pathlib import Path
from typing import Any

from openpyxl import Workbook

from services.registration.rosters import COLUMNS
from services.registration.rules import check_character
from shared.vocabulary import AVAILABILITY, SKILLS

SAMPLE_DIRECTORY = Path(__file__).parent / "registration" / "data" / "sample_directory.csv"
UNITS = ["U410300001", "U410300002", "U410303001", "U410305001", "U410311001"]
COMMUNITIES = [
    "410303001001", "410303001002", "410303002001",
    "410305001001", "410305001002", "410311001001",
]  # fmt: skip
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "建国秀英志强丽华海燕文博春梅晓东玉兰新民红霞国庆"
MOBILE_PREFIXES = ["135", "138", "139", "150", "152", "158", "186", "189", "199"]
REGIONS = ["410302", "410303", "410305", "410306", "410311", "410381"]


def synthetic_member(
    rng: random.Random, units: list[str], communities: list[str]
) -> dict[str, Any]:
    born = date(rng.randint(1960, 1995), rng.randint(1, 12), rng.randint(1, 28))
    body = f"{rng.choice(REGIONS)}{born:%Y%m%d}{rng.randint(0, 999):03d}"
    name = rng.choice(SURNAMES) + "".join(rng.sample(GIVEN, rng.choice((1, 2))))
    return {
        "name": name,
        "id_number": body + check_character(body),
        "phone": f"{rng.choice(MOBILE_PREFIXES)}{rng.randint(0, 99_999_999):08d}",
        "unit_code": rng.choice(units),
        "residence_community_code": rng.choice(communities),
        "skills": rng.sample(SKILLS, 2),
        "availability": rng.sample(AVAILABILITY, 1),
        "is_leader_cadre": rng.random() < 0.05,
        "consent": True,
    }


#: What the demo roster gets wrong on purpose, and where (1-based data row → mistake).
ROSTER_MISTAKES = {
    7: ("身份证号", "check digit"),
    19: ("身份证号", "under 18"),
    33: ("居住社区代码", "unknown community"),
    48: ("手机号", "12 digits"),
    61: ("姓名", "digits in the name"),
}


def roster_xlsx(rows: int, seed: int = 37) -> bytes:
    """A unit's roster as Chinese Excel writes it, with the mistakes of ROSTER_MISTAKES."""
    rng = random.Random(seed)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append([header for _, header in COLUMNS])
    for number in range(1, rows + 1):
        m = synthetic_member(rng, UNITS, COMMUNITIES)
        values = [
            m["name"],
            m["id_number"],
            m["phone"],
            "",
            m["residence_community_code"],
            "、".join(m["skills"]),
            "是" if m["is_leader_cadre"] else "否",
        ]
        mistake = ROSTER_MISTAKES.get(number, (None, None))[1]
        if mistake == "check digit":
            values[1] = values[1][:17] + ("0" if values[1][17] != "0" else "1")
        elif mistake == "under 18":
            body = values[1][:6] + "20150601" + "123"
            values[1] = body + check_character(body)
        elif mistake == "unknown community":
            values[4] = "410399009009"
        elif mistake == "12 digits":
            values[2] = values[2] + "1"
        elif mistake == "digits in the name":
            values[0] = values[0] + "2"
        sheet.append(values)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
