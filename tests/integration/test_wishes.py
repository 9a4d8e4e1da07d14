"""微心愿 through the HTTP contract, on both backends: the whole lifecycle, concurrent claims,
every illegal transition, and the sweep that expires claims and wishes."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.pairing import consumers
from services.pairing.models import MemberReplica, WishClaim
from services.pairing.wishes import TRANSITIONS
from shared import runtime as runtime_mod
from shared.clock import SimulatedClock
from shared.config import CAMPAIGN_TZ, SERVICES
from shared.db import outbox_table
from shared.runtime import Runtime
from tests import support

HOME = "410303001001"  # 王城社区: where the wishes are and the members live
ELSEWHERE = "410305001002"  # 青岛路社区: nobody registered there
START = datetime(2016, 7, 10, 9, 0, tzinfo=CAMPAIGN_TZ)


@pytest.fixture
def clock(backend: Any) -> SimulatedClock:
    """Pairing runs on a simulated clock in the middle of the campaign."""
    sim = SimulatedClock(START)
    rt = backend.rt("pairing")
    simulated = Runtime(service=rt.service, settings=rt.settings, db=rt.db, clock=sim)
    runtime_mod.override("pairing", simulated)
    backend.runtimes["pairing"] = simulated
    return sim


@pytest.fixture
def admin(backend: Any, clock: SimulatedClock) -> Iterator[Any]:
    support.load_sample_directory(backend)
    with support.client(support.issue_token(backend, "admin", "city")) as http:
        yield http


def enrol(backend: Any, http: Any, count: int, seed: int = 100, unconfirmed: int = 0) -> list[str]:
    """Members register (living in HOME, working in 410305001001), staff confirm the HOME
    registration of all but the last ``unconfirmed``, and pairing learns them from events."""
    wanted = {}
    for i in range(count):
        body = support.member_body(seed + i, residence_community_code=HOME, unit_code="U410305001")
        body["skills"] = ["助老服务", "法律咨询"]
        created = http.post("/api/v1/members", json=body)
        assert created.status_code == 201, created.text
        wanted[created.json()["id"]] = "submitted" if i >= count - unconfirmed else "confirmed"
        if wanted[created.json()["id"]] == "confirmed":
            reg = next(r for r in created.json()["registrations"] if r["community_code"] == HOME)
            assert http.post(f"/api/v1/registrations/{reg['id']}/confirm").status_code == 200
    support.relay_all(backend)
    db = backend.rt("pairing").db

    def learned() -> bool:
        with db.session() as s:
            rows = s.scalars(select(MemberReplica)).all()
        known = {str(m.id): c["state"] for m in rows for c in m.communities if c["code"] == HOME}
        return all(known.get(m) == state for m, state in wanted.items())

    assert support.run_consumers([support.consumer(backend, "pairing")], until=learned, timeout=60)
    return list(wanted)


def as_member(backend: Any, member_id: str) -> Any:
    return support.client(support.issue_token(backend, "member", f"member:{member_id}"))


def new_wish(http: Any, **overrides: Any) -> dict[str, Any]:
    body = {
        "community_code": HOME,
        "title": "帮独居老人更换灯泡",
        "description": "三楼，老人行动不便",
        "category": "水电维修",
        "beneficiary_category": "空巢老人",
        "deadline": None,
        **overrides,
    }
    created = http.post("/api/v1/wishes", json=body)
    assert created.status_code == 201, created.text
    return dict(created.json())


def published(http: Any, **overrides: Any) -> str:
    wish_id = new_wish(http, **overrides)["id"]
    for step in ("submit", "publish"):
        assert http.post(f"/api/v1/wishes/{wish_id}/{step}").status_code == 200
    return str(wish_id)


def events(backend: Any) -> list[str]:
    outbox = backend.rt("pairing").db.metadata.tables["outbox"]
    with backend.rt("pairing").db.session() as s:
        return list(s.scalars(select(outbox.c.routing_key).order_by(outbox.c.position)))


def active_claims(backend: Any, wish_id: str) -> list[WishClaim]:
    with backend.rt("pairing").db.session() as s:
        query = select(WishClaim).where(WishClaim.state == "active")
        return [c for c in s.scalars(query) if str(c.wish_id) == wish_id]


# --- the lifecycle -------------------------------------------------------------------------


def test_a_wish_goes_from_collected_to_evaluated_and_fills_the_claimer_s_wish_item(
    backend: Any, admin: Any
) -> None:
    helper, other, unconfirmed = enrol(backend, admin, 3, unconfirmed=1)
    wish = new_wish(admin, deadline="2016-07-20")
    assert wish["state"] == "collected" and wish["claim"] is None
    wish_id = wish["id"]
    with as_member(backend, helper) as me, as_member(backend, other) as them:
        assert me.get(f"/api/v1/wishes/{wish_id}").status_code == 404  # not published yet
        for step, state in (("submit", "pending_review"), ("publish", "published")):
            moved = admin.post(f"/api/v1/wishes/{wish_id}/{step}")
            assert moved.status_code == 200 and moved.json()["state"] == state
        # a member claims only for themself, and only where they reported in
        assert (
            me.post(f"/api/v1/wishes/{wish_id}/claim", json={"member_id": other}).status_code == 403
        )
        refused = admin.post(f"/api/v1/wishes/{wish_id}/claim", json={"member_id": unconfirmed})
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "member_id"
        assert "not registered" in refused.json()["errors"][0]["message"]
        claimed = me.post(f"/api/v1/wishes/{wish_id}/claim", json={"member_id": helper})
        assert claimed.status_code == 200, claimed.text
        assert claimed.json()["state"] == "claimed"
        assert claimed.json()["claim"]["member_id"] == helper
        assert them.get(f"/api/v1/wishes/{wish_id}").json()["claim"]["member_id"] is None
        assert them.post(f"/api/v1/wishes/{wish_id}/fulfil").status_code == 403
        assert me.post(f"/api/v1/wishes/{wish_id}/fulfil").json()["state"] == "fulfilled"
    confirmed = admin.post(f"/api/v1/wishes/{wish_id}/confirm").json()
    assert confirmed["state"] == "confirmed" and confirmed["claim"]["state"] == "realized"
    assert admin.post(f"/api/v1/wishes/{wish_id}/evaluate", json={"rating": 6}).status_code == 422
    evaluated = admin.post(f"/api/v1/wishes/{wish_id}/evaluate", json={"rating": 5}).json()
    assert (evaluated["state"], evaluated["rating"]) == ("evaluated", 5)

    wish_events = [k.split(".", 1)[1] for k in events(backend) if ".wish." in k]
    assert wish_events == [
        f"wish.{e}"
        for e in (
            "collected",
            "submitted",
            "published",
            "claimed",
            "fulfilled",
            "confirmed",
            "evaluated",
        )
    ]
    assert all(k.startswith("410303.") for k in events(backend))
    progress = admin.get(f"/api/v1/members/{helper}/progress").json()
    assert progress["wish"] is True and progress["missing"] == [
        "home_visit",
        "community_activity",
        "policy_talk",
        "team",
    ]


def test_staff_see_their_community_s_wishes_and_members_published_ones_best_match_first(
    backend: Any, admin: Any
) -> None:
    (member,) = enrol(backend, admin, 1)  # skills 助老服务, 法律咨询; lives in HOME
    hidden = new_wish(admin)["id"]
    plain = published(admin, title="修水管")
    soon = published(admin, category="家电维修", title="修冰箱", deadline="2016-07-12")
    skilled = published(admin, category="助老服务", title="陪老人就医")
    rejected = new_wish(admin)["id"]
    admin.post(f"/api/v1/wishes/{rejected}/submit")
    assert admin.post(f"/api/v1/wishes/{rejected}/reject", json={}).status_code == 422
    why = admin.post(f"/api/v1/wishes/{rejected}/reject", json={"reason": "不属于微心愿范围"})
    assert why.json()["reason"] == "不属于微心愿范围"
    public = {plain, soon, skilled}

    with support.client(
        support.issue_token(backend, "community", f"community:{ELSEWHERE}")
    ) as stranger:
        assert stranger.get(f"/api/v1/wishes/{plain}").status_code == 404
        assert stranger.post(f"/api/v1/wishes/{plain}/withdraw").status_code == 404
        assert stranger.get("/api/v1/wishes", params={"community_code": HOME}).status_code == 404
    with support.client(support.issue_token(backend, "community", f"community:{HOME}")) as staff:
        listed = staff.get("/api/v1/wishes", params={"community_code": HOME}).json()
        assert {w["id"] for w in listed} == public | {hidden, rejected}
        elsewhere = {"community_code": ELSEWHERE, "title": "x"}
        assert staff.post("/api/v1/wishes", json=elsewhere).status_code == 404
    with support.client(support.issue_token(backend, "leader", "city")) as leader:
        assert leader.get(f"/api/v1/wishes/{plain}").status_code == 403
    with as_member(backend, member) as me:
        assert {w["id"] for w in me.get("/api/v1/wishes").json()} == public
        assert (
            me.post("/api/v1/wishes", json={"community_code": HOME, "title": "x"}).status_code
            == 403
        )
        # 社区所需，党员所长: the member's skill first, then the nearer deadline
        ranked = me.get(f"/api/v1/members/{member}/wishes/recommended").json()
        assert [w["id"] for w in ranked] == [skilled, soon, plain]
        assert ranked[0]["match"] == {
            "skill": "助老服务",
            "community": "residence",
            "days_left": None,
        }
        nobody = "00000000-0000-0000-0000-000000000000"
        assert me.get(f"/api/v1/members/{nobody}/wishes/recommended").status_code == 404

    past = {"community_code": HOME, "title": "x", "deadline": "2016-07-01"}
    refused = admin.post("/api/v1/wishes", json=past)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "deadline"
    unknown = admin.post("/api/v1/wishes", json={"community_code": "410399001001", "title": "x"})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "community_code"


# --- concurrent claims ---------------------------------------------------------------------


@pytest.fixture
def server(admin: Any) -> Iterator[str]:
    """The whole application on a real uvicorn server, on a free loopback port."""
    with support.serving(SERVICES) as url:
        yield url


def test_of_fifty_concurrent_claims_on_one_wish_exactly_one_wins(
    backend: Any, admin: Any, server: str
) -> None:
    members = enrol(backend, admin, 25, seed=300)
    claimers = members * 2  # 25 members, each racing the others and themself
    wish_id = published(admin)
    staff = support.issue_token(backend, "community", f"community:{HOME}")
    gate = threading.Barrier(len(claimers))
    answers: list[tuple[str, int]] = []

    with httpx.Client(
        base_url=server, headers={"Authorization": f"Bearer {staff}"}, timeout=60
    ) as http:

        def claim_for(member_id: str) -> None:
            gate.wait()
            got = http.post(f"/api/v1/wishes/{wish_id}/claim", json={"member_id": member_id})
            answers.append((member_id, got.status_code))

        threads = [threading.Thread(target=claim_for, args=(m,)) for m in claimers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)

    statuses = sorted(status for _, status in answers)
    winners = [m for m, status in answers if 200 <= status < 300]
    assert len(answers) == 50 and len(winners) == 1, statuses
    assert statuses.count(409) == 49, statuses
    (claim,) = active_claims(backend, wish_id)
    assert str(claim.member_id) == winners[0]
    assert admin.get(f"/api/v1/wishes/{wish_id}").json()["state"] == "claimed"
    assert sum(".wish.claimed" in k for k in events(backend)) == 1


# --- every illegal transition --------------------------------------------------------------

ACTIONS = (
    "submit",
    "publish",
    "reject",
    "withdraw",
    "claim",
    "cancel",
    "revoke",
    "fulfil",
    "confirm",
    "evaluate",
)
LEGAL = {
    "collected": {"submit", "publish"},  # staff may publish what they collected at once
    "pending_review": {"publish", "reject"},
    "rejected": set(),
    "published": {"claim", "withdraw"},
    "released": {"claim", "withdraw"},  # published again after the claim was cancelled
    "withdrawn": set(),
    "expired": set(),
    "claimed": {"cancel", "revoke", "fulfil"},
    "fulfilled": {"confirm"},
    "confirmed": {"evaluate"},
    "evaluated": set(),
}
UNSEEN = ("collected", "pending_review", "rejected")
PATHS = {  # the steps that bring a new wish to each state
    "collected": [],
    "pending_review": ["submit"],
    "rejected": ["submit", "reject"],
    "published": ["submit", "publish"],
    "released": ["submit", "publish", "claim", "cancel"],
    "withdrawn": ["submit", "publish", "withdraw"],
    "claimed": ["submit", "publish", "claim"],
    "fulfilled": ["submit", "publish", "claim", "fulfil"],
    "confirmed": ["submit", "publish", "claim", "fulfil", "confirm"],
    "evaluated": ["submit", "publish", "claim", "fulfil", "confirm", "evaluate"],
}


def test_every_illegal_transition_of_wish_and_claim_is_refused_and_changes_nothing(
    backend: Any, admin: Any, clock: SimulatedClock
) -> None:
    (member,) = enrol(backend, admin, 1)
    bodies = {
        "reject": {"reason": "不符合"},
        "claim": {"member_id": member},
        "evaluate": {"rating": 4},
    }
    with as_member(backend, member) as me:

        def act(wish_id: str, action: str) -> Any:
            http = me if action in ("cancel", "fulfil") else admin  # staff may claim for one
            return http.post(f"/api/v1/wishes/{wish_id}/{action}", json=bodies.get(action))

        wishes = {}
        for state, steps in PATHS.items():
            wishes[state] = new_wish(admin)["id"]
            for step in steps:
                assert act(wishes[state], step).status_code == 200, (state, step)
        wishes["expired"] = published(admin, deadline="2016-07-10")
        clock.advance(timedelta(days=1))
        assert consumers.periodic(backend.rt("pairing"))["wishes_expired"] == 1

        for state, wish_id in wishes.items():
            before = admin.get(f"/api/v1/wishes/{wish_id}").json()
            assert before["state"] == ("published" if state == "released" else state)
            sent = len(events(backend))
            for action in set(ACTIONS) - LEGAL[state]:
                refused = act(wish_id, action)
                if state in UNSEEN and action in ("cancel", "fulfil"):
                    # a member cannot see a wish before it is published: 404, not 409
                    assert refused.status_code == 404, (state, action, refused.text)
                else:
                    assert refused.status_code == 409, (state, action, refused.text)
                    assert refused.json()["state"] == before["state"], (state, action)
                    assert refused.json()["allowed"] == list(TRANSITIONS[before["state"]])
            assert admin.get(f"/api/v1/wishes/{wish_id}").json() == before, state
            assert len(events(backend)) == sent, state
        released = admin.post(f"/api/v1/wishes/{wishes['released']}/revoke").json()
        assert released["claim_state"] == "cancelled"


def test_staff_publish_a_wish_they_collected_in_one_step_and_lists_count_what_matches(
    backend: Any, admin: Any
) -> None:
    (member,) = enrol(backend, admin, 1)
    wish_id = new_wish(admin, title="给独居老人送药")["id"]
    sent = len(events(backend))
    answer = admin.post(f"/api/v1/wishes/{wish_id}/publish")
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "published"
    assert [e.split(".", 1)[1] for e in events(backend)[sent:]] == ["wish.published"]
    with as_member(backend, member) as me:
        assert me.get(f"/api/v1/wishes/{wish_id}").json()["state"] == "published"
    new_wish(admin)
    listed = admin.get("/api/v1/wishes", params={"community_code": HOME, "state": "collected"})
    assert listed.headers["X-Total-Count"] == str(len(listed.json())) != "0"
    one = admin.get("/api/v1/wishes", params={"community_code": HOME, "limit": 1})
    assert len(one.json()) == 1 and int(one.headers["X-Total-Count"]) >= 2


# --- the sweep -----------------------------------------------------------------------------


def test_the_sweep_returns_an_unfulfilled_claim_after_the_claim_period_and_expires_late_wishes(
    backend: Any, admin: Any, clock: SimulatedClock
) -> None:
    first, second = enrol(backend, admin, 2)
    lapsing = published(admin)
    done = published(admin)
    late = published(admin, deadline="2016-07-16")
    with as_member(backend, first) as me:
        for wish_id in (lapsing, done):
            assert (
                me.post(f"/api/v1/wishes/{wish_id}/claim", json={"member_id": first}).status_code
                == 200
            )
        expires = datetime.fromisoformat(
            me.get(f"/api/v1/wishes/{lapsing}").json()["claim"]["expires_at"]
        )
        assert expires == START + timedelta(days=7)
        assert me.post(f"/api/v1/wishes/{done}/fulfil").status_code == 200
    rt = backend.rt("pairing")
    clock.advance(timedelta(days=6))
    assert consumers.periodic(rt) == {"claims_expired": 0, "wishes_expired": 0}
    clock.advance(timedelta(days=1))  # seven days: the claim's time is up, and 07-17 is past 07-16
    assert consumers.periodic(rt) == {"claims_expired": 1, "wishes_expired": 1}
    assert consumers.periodic(rt) == {"claims_expired": 0, "wishes_expired": 0}
    back = admin.get(f"/api/v1/wishes/{lapsing}").json()
    assert back["state"] == "published" and back["claim"]["state"] == "expired"
    assert admin.get(f"/api/v1/wishes/{done}").json()["state"] == "fulfilled"
    assert admin.get(f"/api/v1/wishes/{late}").json()["state"] == "expired"
    assert [k for k in events(backend) if k.endswith(("wish.released", "wish.expired"))] == [
        "410303.wish.released",
        "410303.wish.expired",
    ]
    assert not active_claims(backend, lapsing)
    again = admin.post(f"/api/v1/wishes/{lapsing}/claim", json={"member_id": second})
    assert again.status_code == 200 and again.json()["claim"]["member_id"] == second
    # staff may take it back too: published again, the claim revoked, the reason sent on
    revoked = admin.post(f"/api/v1/wishes/{lapsing}/revoke", json={"reason": "联系不上"}).json()
    assert (revoked["state"], revoked["claim"]["state"]) == ("published", "revoked")
    assert events(backend)[-1] == "410303.wish.released"


def test_a_member_who_withdraws_gives_back_the_wish_they_held_and_leaves_no_trace(
    backend: Any, admin: Any
) -> None:
    keen, other = enrol(backend, admin, 2)
    wish_id = published(admin)
    with as_member(backend, keen) as member:
        held = member.post(f"/api/v1/wishes/{wish_id}/claim", json={"member_id": keen})
        assert held.status_code == 200, held.text
        assert member.delete(f"/api/v1/members/{keen}").json()["state"] == "withdrawn"
    support.relay_all(backend)
    db = backend.rt("pairing").db

    def forgotten() -> bool:
        with db.session() as s:
            return s.get(MemberReplica, uuid.UUID(keen)) is None

    assert support.run_consumers(
        [support.consumer(backend, "pairing")], until=forgotten, timeout=60
    )
    assert admin.get(f"/api/v1/wishes/{wish_id}").json()["state"] == "published"
    with db.session() as s:
        assert s.scalars(select(WishClaim)).all() == []
        bodies = " ".join(s.scalars(select(outbox_table(db.metadata).c.body)))
    assert keen not in bodies  # the release event names nobody
    with as_member(backend, other) as member:  # the wish can be claimed again
        again = member.post(f"/api/v1/wishes/{wish_id}/claim", json={"member_id": other})
        assert again.status_code == 200, again.text
