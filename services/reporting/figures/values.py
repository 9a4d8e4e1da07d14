"""What a figure is: one scope's counts at one instant, the rates docs/domain.md lists,
and the states and stages of a micro-wish — defined here once, for the summary, the funnel
and every rate.

Per scope, ``members`` are the members counting in it at that instant, each once (a
district or the city never counts a member twice). Then:

- **reported in** (报到): for a *community*, the member's registration in that community is
  confirmed — 报到 is to a community, so a member confirmed at A and still ``submitted`` at B
  has reported in at A only; for a *unit*, a *district* and the *city*, the member has at
  least one confirmed registration anywhere (docs/domain.md: "at least one confirmed
  registration anywhere"). The projections keep it with each member's scope
  (``MemberScope.reported_in``), so the live figures and those as of an instant agree.
- **dual-registered, dual-paired, the five ones** (each item and in full) count only members
  reported in, in that scope's sense: every rate's numerator lies inside its denominator.
  报到率 = reported_in ÷ members; 双注册率 = dual_registered ÷ members; 对接率 = dual_paired ÷
  reported_in; 五个一完成率 = five_ones_complete ÷ reported_in (each item ÷ reported_in too).
- **verified hours** and **leading cadres** (领导干部参与率 = active ÷ cadres) count every member
  counting in the scope.
- **wishes** by state: a community's, a district's and the city's are the wishes that live
  there; a unit publishes no wishes, so its are the ones its members hold or fulfilled, and
  it has no claim rate and no "published" stage (``None``, shown as "—").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from shared.config import CITY
from shared.vocabulary import FIVE_ONES

#: The five ones' items, in the notice's order (names: ``shared.vocabulary.FIVE_ONES``).
KINDS: tuple[str, ...] = tuple(FIVE_ONES)

#: A micro-wish's states, in lifecycle order (pairing's ``wishes.TRANSITIONS``): collected →
#: pending_review → published | rejected; published → claimed | withdrawn | expired;
#: claimed → published (released) | fulfilled → confirmed → evaluated.
WISH_STATES = (
    "collected",
    "pending_review",
    "published",
    "rejected",
    "withdrawn",
    "expired",
    "claimed",
    "fulfilled",
    "confirmed",
    "evaluated",
)
#: Claimed and still held or done (the claim rate's numerator, the completion rate's
#: denominator).
CLAIMED = ("claimed", "fulfilled", "confirmed", "evaluated")
#: Fulfilled by the member (confirmed or not yet).
FULFILLED = ("fulfilled", "confirmed", "evaluated")
#: Fulfilled and confirmed by the community (the completion rate's numerator).
COMPLETED = ("confirmed", "evaluated")
#: Reached publication, whatever became of it: a withdrawn or expired wish was published and
#: never claimed (only an unclaimed wish can be withdrawn or expire), so it stays in the
#: claim rate's denominator — 已发布 in the funnel is the same number.
PUBLISHED = ("published", "withdrawn", "expired", *CLAIMED)
#: The wish funnel (微心愿进展): (key, label, states); a wish counts in every stage it reached.
FUNNEL: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("published", "已发布", PUBLISHED),
    ("claimed", "已认领", CLAIMED),
    ("fulfilled", "已完成", FULFILLED),
    ("confirmed", "社区确认", COMPLETED),
)

CITY_NAME = "全市"
#: County-level divisions' names (Luoyang 2016 and 2021, docs/domain.md); the directory's events
#: carry no district names, so these are the fallback (else the code is shown).
DISTRICT_NAMES = {
    "410302": "老城区",
    "410303": "西工区",
    "410304": "瀍河回族区",
    "410305": "涧西区",
    "410306": "吉利区",
    "410307": "偃师区",
    "410308": "孟津区",
    "410311": "洛龙区",
    "410322": "孟津县",
    "410323": "新安县",
    "410324": "栾川县",
    "410325": "嵩县",
    "410326": "汝阳县",
    "410327": "宜阳县",
    "410328": "洛宁县",
    "410329": "伊川县",
    "410381": "偃师市",
}


def _rate(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


@dataclass(frozen=True)
class Figures:
    """One scope's figures at one instant (counts; the rates are properties). What each
    count means per kind of scope: see the module's docstring."""

    scope: str
    name: str
    members: int = 0
    reported_in: int = 0
    dual_registered: int = 0
    dual_paired: int = 0
    five_ones_complete: int = 0
    five_ones: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    wishes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WISH_STATES, 0))
    verified_hours: float = 0.0
    leading_cadres: int = 0
    leading_cadres_active: int = 0

    @property
    def code(self) -> str:
        return self.scope.split(":", 1)[1] if ":" in self.scope else CITY

    @property
    def is_unit(self) -> bool:
        return self.scope.startswith("unit:")

    def _wishes_in(self, states: tuple[str, ...]) -> int:
        return sum(self.wishes.get(s, 0) for s in states)

    @property
    def wishes_published(self) -> int:
        return self._wishes_in(PUBLISHED)

    @property
    def wishes_claimed(self) -> int:
        return self._wishes_in(CLAIMED)

    @property
    def wishes_completed(self) -> int:
        return self._wishes_in(COMPLETED)

    @property
    def funnel(self) -> list[tuple[str, str, int | None]]:
        """(key, label, wishes that reached the stage) per stage of :data:`FUNNEL`; a unit's
        "published" is ``None``: a unit publishes nothing, its wishes are its members'."""
        return [
            (key, label, None if key == "published" and self.is_unit else self._wishes_in(states))
            for key, label, states in FUNNEL
        ]

    @property
    def reported_in_rate(self) -> float:
        """报到率: reported in ÷ members on the rosters."""
        return _rate(self.reported_in, self.members)

    @property
    def dual_registration_rate(self) -> float:
        """双注册率: dual-registered ÷ members on the rosters."""
        return _rate(self.dual_registered, self.members)

    @property
    def dual_pairing_rate(self) -> float:
        """对接率: dual-paired ÷ reported in (both in this scope's sense)."""
        return _rate(self.dual_paired, self.reported_in)

    @property
    def wish_claim_rate(self) -> float | None:
        """微心愿认领率: claimed (held or done) ÷ published (:data:`PUBLISHED`).

        ``None`` for a unit: its wishes are only those its members claimed, so the rate
        would always be 100 %; a wish is published by a community, and its claim rate is
        read at the community, district and city."""
        if self.is_unit:
            return None
        return _rate(self.wishes_claimed, self.wishes_published)

    @property
    def wish_completion_rate(self) -> float:
        """微心愿完成率: fulfilled and confirmed ÷ claimed."""
        return _rate(self.wishes_completed, self.wishes_claimed)

    @property
    def five_ones_rate(self) -> float:
        """五个一完成率: all five verified ÷ reported in."""
        return _rate(self.five_ones_complete, self.reported_in)

    @property
    def cadre_rate(self) -> float:
        """领导干部参与率: leading cadres with ≥1 verified record ÷ leading cadres."""
        return _rate(self.leading_cadres_active, self.leading_cadres)

    RATES = (
        "reported_in_rate",
        "dual_registration_rate",
        "dual_pairing_rate",
        "wish_claim_rate",
        "wish_completion_rate",
        "five_ones_rate",
        "cadre_rate",
    )

    def as_dict(self) -> dict[str, Any]:
        """Counts, rates (4 decimals; ``None`` where a rate does not apply) and the wish
        funnel, JSON-ready."""
        data = asdict(self)
        data["verified_hours"] = round(self.verified_hours, 2)
        rates: dict[str, float | None] = {}
        for name in self.RATES:
            value = getattr(self, name)
            rates[name] = None if value is None else round(value, 4)
        data["rates"] = rates
        data["wish_funnel"] = {key: n for key, _, n in self.funnel}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Figures:
        """The inverse of :meth:`as_dict` (rates and funnel are derived again)."""
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in names})
