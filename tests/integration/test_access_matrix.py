"""Who may call each route, in and out of their scope: the whole matrix, from the OpenAPI.

Every operation of ``create_app(SERVICES).openapi()`` has a row in :data:`TABLE`: the roles
that may call it, and how to fill its path, query and body for a caller **in** its scope,
**out** of it (another district's community, unit, wish, record, team, pairing, roster,
staff account or report; another member for a member), and for an object that does not
exist (**none**). A route missing from the table fails the test (a new route cannot
escape it), and so does a row naming a route that no longer exists.

For every operation, each caller sends the request (a body that would be valid, so an
allowed call is not refused for its body):

- anonymous: 401, except the routes meant to be public (:data:`PUBLIC`), checked on their
  own terms (sign-in answers the same for a known and an unknown number; the provider
  callbacks want their own token; the health checks);
- a role the row does not name: 403 or 404, never a 2xx;
- a role the row names, in its scope: neither 401, 403 nor 404;
- out of its scope: 403 or 404, never a 2xx, and the very answer (status and problem,
  ids and codes aside) of an object that does not exist: nobody learns what exists
  outside their scope;
- notify's report-files token: it opens the report file download and nothing else;
- nothing answers a 5xx.

A few rows say where the rule bends, and why: a list filtered by a scope answers the
caller's part of it (an empty list, the same as for a place that does not exist); codes of
the directory are public, so creating something in a community that does not exist may be
a 422 where another district's is a 403 or 404; the city's admin reading a place that does
not exist gets its (empty) figures.

State-changing calls by a caller who may make them act on objects made for that call, so
no row breaks another. One small month (a directory, three members, their registrations
confirmed and consumed downstream, wishes, records, teams, pairings, runs, rosters, staff
accounts, reports) is seeded once for the module on the embedded backend.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.app import create_app
from services.demo_data import SAMPLE_DIRECTORY
from services.pairing.models import MemberReplica
from services.registration import tasks as registration_tasks
from services.registration.rosters import COLUMNS
from services.reporting import bootstrap as reporting_bootstrap
from services.reporting.commands import RunReport
from services.reporting.models import ReportRun, StoredReportFile
from shared import tokens
from shared.config import CAMPAIGN_TZ, SERVICES
from tests import support
from tests.conftest import Backend, open_backend

#: One worker runs the module (``make test``'s ``--dist loadgroup``): the month is seeded once.
pytestmark = pytest.mark.xdist_group("access-matrix")

# --- places -------------------------------------------------------------------------------------

DISTRICT, OTHER_DISTRICT = "410303", "410305"
HOME, OTHER_HOME = "410303001001", "410305001001"  # the caller's community; another district's
UNIT, OTHER_UNIT = "U410303001", "U410305001"
#: places that do not exist (out of the scoped callers' scope, as another district's are)
NO_COMMUNITY, NO_UNIT, NO_DISTRICT = "410305099099", "U410305999", "410399"
TODAY = datetime(2016, 7, 10, 10, 0, tzinfo=CAMPAIGN_TZ)
WEBHOOK = "access-matrix-webhook-token"

#: The callers with a role: (role, scope). The member's scope names the seeded member.
SCOPES = {
    "admin": "city",
    "operator": f"district:{DISTRICT}",
    "leader": f"district:{DISTRICT}",
    "community": f"community:{HOME}",
    "unit": f"unit:{UNIT}",
}
ROLES = (*SCOPES, "member", "registrant")
#: notify's report-files token (opens one route), and no token at all.
NOTIFY, ANONYMOUS = "notify", "anonymous"
CALLERS = (ANONYMOUS, *ROLES, NOTIFY)
STAFF = frozenset({"admin", "operator", "community"})
OPERATORS = frozenset({"admin", "operator"})
READERS = frozenset({"admin", "operator", "leader", "unit", "community"})
ANY = frozenset({"admin", "operator", "leader", "unit", "community", "member"})


# --- the month ----------------------------------------------------------------------------------


@dataclass
class World:
    """The seeded month and makers of fresh objects, each made by the admin over HTTP."""

    backend: Backend
    app: Any
    admin: TestClient
    members: dict[str, str] = field(default_factory=dict)  # me, neighbour (HOME), other
    phones: dict[str, str] = field(default_factory=dict)
    objects: dict[str, str] = field(default_factory=dict)
    seeds: Iterator[int] = field(default_factory=lambda: itertools.count(7000))
    clients: dict[str, TestClient] = field(default_factory=dict)

    # tokens and clients ------------------------------------------------------------------
    def token(self, role: str, member: str | None = None) -> str:
        if role == "member":
            return support.issue_token(self.backend, "member", f"member:{member or self.me}")
        if role == "registrant":
            return self.registrant(self.fresh_phone())
        if role == NOTIFY:
            return self.backend.settings.report_files_token()
        return support.issue_token(self.backend, role, SCOPES[role])

    def registrant(self, phone: str) -> str:
        """A registrant's session for ``phone`` (a verified number with no account)."""
        digest = self.backend.rt("registration").sealer.digest(phone)
        token, _ = tokens.sign(
            self.backend.settings,
            subject=f"phone:{digest}",
            role="registrant",
            scope=f"phone:{digest[:16]}",
            ttl=timedelta(hours=2),
            phone_hash=digest,
        )
        return token

    def client(self, role: str, member: str | None = None) -> TestClient:
        key = f"{role}:{member}"
        if key not in self.clients:
            self.clients[key] = self.http(self.token(role, member))
        return self.clients[key]

    def http(self, token: str | None) -> TestClient:
        """A client of the one app, sending ``token``."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return TestClient(self.app, headers=headers)

    @property
    def me(self) -> str:
        return self.members["me"]

    def fresh_phone(self) -> str:
        return f"1990000{next(self.seeds):04d}"

    def ok(self, response: Any, status: int = 200) -> Any:
        assert response.status_code == status, (
            response.request.url.path,
            response.status_code,
            response.json().get("errors") if response.status_code == 422 else "",
        )
        return response.json()

    # members and registrations -----------------------------------------------------------
    def register(self, unit: str, home: str, **extra: Any) -> dict[str, Any]:
        body = support.member_body(
            next(self.seeds), unit_code=unit, residence_community_code=home, **extra
        )
        created: dict[str, Any] = self.ok(self.admin.post("/api/v1/members", json=body), 201)
        self.phones[created["id"]] = body["phone"]
        return created

    def registration(self, member: dict[str, Any], community: str) -> str:
        return str(
            next(r["id"] for r in member["registrations"] if r["community_code"] == community)
        )

    # pairing's objects ---------------------------------------------------------------------
    def wish(self, community: str, state: str, member: str | None = None) -> str:
        """A wish of ``community`` in ``state`` (collected … confirmed), claimed by ``member``."""
        http = self.admin
        wish = self.ok(
            http.post("/api/v1/wishes", json={"community_code": community, "title": "买米"}), 201
        )
        path = f"/api/v1/wishes/{wish['id']}"
        steps = ["collected", "submitted", "published", "claimed", "fulfilled", "confirmed"]
        for step in steps[1 : steps.index(state) + 1]:
            if step == "submitted":
                self.ok(http.post(f"{path}/submit"))
            elif step == "published":
                self.ok(http.post(f"{path}/publish"))
            elif step == "claimed":
                self.ok(http.post(f"{path}/claim", json={"member_id": member}))
            elif step == "fulfilled":
                self.ok(self.client("member", member).post(f"{path}/fulfil"))
            else:
                self.ok(http.post(f"{path}/confirm"))
        return str(wish["id"])

    def record(self, community: str, member: str) -> str:
        body = {
            "member_id": member,
            "kind": "home_visit",
            "community_code": community,
            "date": "2016-07-02",
            "hours": 1,
        }
        return str(self.ok(self.admin.post("/api/v1/activities", json=body), 201)["id"])

    def team(self, community: str, member: str | None = None, state: str = "") -> str:
        """A team of ``community``; ``member`` requested to join it, or was added by staff."""
        team = self.ok(
            self.admin.post(f"/api/v1/communities/{community}/teams", json={"name": "服务队"}), 201
        )
        if member and state == "requested":
            self.ok(
                self.client("member", member).post(
                    f"/api/v1/teams/{team['id']}/members", json={"member_id": member}
                ),
                201,
            )
        elif member:
            self.ok(
                self.admin.post(f"/api/v1/teams/{team['id']}/members", json={"member_id": member}),
                201,
            )
        return str(team["id"])

    def need(self, community: str) -> str:
        body = {"title": "助老服务", "category": "空巢老人", "volunteers_needed": 3}
        made = self.admin.post(f"/api/v1/communities/{community}/needs", json=body)
        return str(self.ok(made, 201)["id"])

    def pairing(self, community: str, member: str) -> str:
        """A live pairing of ``member`` with a new need of ``community``."""
        need = self.need(community)
        body = {"member_id": member, "need_id": need}
        made = self.admin.post("/api/v1/pairings", json=body)
        if made.status_code == 201:
            return str(made.json()["id"])
        pairings = self.ok(self.admin.get(f"/api/v1/members/{member}/pairings"))
        return str(next(p["id"] for p in pairings["pairings"] if str(p.get("need_id")) == need))


def _roster_csv(unit_home: str, rows: int, seed: int) -> bytes:
    """A roster with ``rows`` members and one rejected row."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([header for _, header in COLUMNS])
    for n in range(rows):
        m = support.member_body(seed + n, residence_community_code=unit_home)
        writer.writerow([m["name"], m["id_number"], m["phone"], "", unit_home, "", "否"])
    writer.writerow(["坏行", "123", "123", "", unit_home, "", "否"])
    return out.getvalue().encode()


def _directory_rows(district: str) -> bytes:
    """The sample directory's rows in one district: its streets, communities and
    county-level units (the district's own row is the city's)."""
    lines = SAMPLE_DIRECTORY.read_text(encoding="utf-8").splitlines()
    keep = [lines[0]]
    for line in lines[1:]:
        kind, code, _, _, level, *_ = line.split(",")
        if kind == "district" or (kind == "unit" and level != "county"):
            continue
        if code.removeprefix("U").startswith(district):
            keep.append(line)
    return ("\n".join(keep) + "\n").encode()


def _seed(backend: Backend) -> World:
    support.on_simulated_clock(backend, TODAY)
    support.load_sample_directory(backend)
    app = create_app(SERVICES)
    admin = TestClient(
        app, headers={"Authorization": f"Bearer {support.issue_token(backend, 'admin', 'city')}"}
    )
    world = World(backend, app, admin)
    me = world.register(UNIT, HOME)
    neighbour = world.register(UNIT, HOME)
    other = world.register(OTHER_UNIT, "410305001002")
    waiting = world.register(UNIT, HOME)  # reported in at HOME, not confirmed yet
    for member, community in ((me, HOME), (neighbour, HOME), (other, OTHER_HOME)):
        world.ok(
            admin.post(f"/api/v1/registrations/{world.registration(member, community)}/confirm")
        )
    world.members = {"me": me["id"], "neighbour": neighbour["id"], "other": other["id"]}
    # the other member's residence registration stays waiting: an out-of-scope report-in
    world.objects["registration:out"] = world.registration(other, "410305001002")
    world.objects["registration:in"] = world.registration(waiting, HOME)
    support.relay_all(backend)
    want = {(me["id"], HOME), (neighbour["id"], HOME), (other["id"], OTHER_HOME)}

    def learned() -> bool:
        with backend.rt("pairing").db.session() as s:
            rows = s.scalars(select(MemberReplica)).all()
        got = {
            (str(r.id), c["code"]) for r in rows for c in r.communities if c["state"] == "confirmed"
        }
        return want <= got

    consumers = [support.consumer(backend, s) for s in support.CONSUMERS]
    assert support.run_consumers(consumers, until=learned, timeout=60, settle=1.0)

    o = world.objects
    mine, neighbours, others = world.me, world.members["neighbour"], world.members["other"]
    o["wish:published:out"] = world.wish(OTHER_HOME, "published")
    o["wish:collected:out"] = world.wish(OTHER_HOME, "collected")
    o["wish:submitted:out"] = world.wish(OTHER_HOME, "submitted")
    o["wish:claimed:out"] = world.wish(OTHER_HOME, "claimed", others)
    o["wish:claimed:neighbour"] = world.wish(HOME, "claimed", neighbours)
    for state in ("collected", "submitted", "published", "claimed", "fulfilled", "confirmed"):
        o[f"wish:{state}:in"] = world.wish(HOME, state, mine if state not in _UNCLAIMED else None)
    o["wish:fulfilled:out"] = world.wish(OTHER_HOME, "fulfilled", others)
    o["wish:confirmed:out"] = world.wish(OTHER_HOME, "confirmed", others)
    o["record:in"] = world.record(HOME, mine)
    o["record:out"] = world.record(OTHER_HOME, others)
    o["record:neighbour"] = world.record(HOME, neighbours)
    o["team:in"] = world.team(HOME, mine)
    o["team:out"] = world.team(OTHER_HOME, others, "requested")
    o["team:neighbour"] = world.team(HOME, neighbours)
    o["pairing:in"] = world.pairing(HOME, mine)
    o["pairing:out"] = world.pairing(OTHER_HOME, others)
    o["pairing:neighbour"] = world.pairing(HOME, neighbours)
    o["need:out"] = world.need(OTHER_HOME)
    for side, code in (("in", HOME), ("out", OTHER_HOME)):
        run = admin.post("/api/v1/pairings/run", json={"scope": f"community:{code}"})
        o[f"run:{side}"] = str(world.ok(run, 202)["id"])
    for side, unit, home in (("in", UNIT, HOME), ("out", OTHER_UNIT, OTHER_HOME)):
        upload = admin.post(
            "/api/v1/rosters",
            data={"unit_code": unit},
            files={"file": ("roster.csv", _roster_csv(home, 2, next(world.seeds) * 10))},
        )
        o[f"roster:{side}"] = str(world.ok(upload, 202)["id"])
        registration_tasks.import_roster(o[f"roster:{side}"])
    for side, code in (("in", HOME), ("out", OTHER_HOME)):
        body = {
            "name": "社区工作人员",
            "phone": world.fresh_phone(),
            "role": "community",
            "scope": f"community:{code}",
        }
        o[f"staff:{side}"] = str(world.ok(admin.post("/api/v1/staff", json=body), 201)["id"])
    _reports(world)
    return world


def _reports(world: World) -> None:
    """A report of each caller's scope and one of another district: one built, the others
    its copies under their scopes (building each would take seconds; access is the same)."""
    built = reporting_bootstrap.bus().handle(RunReport(scope="city")).report_id
    world.objects["report:city"] = str(built)
    rt = world.backend.rt("reporting")
    with rt.uow() as uow:
        run = uow.session.get(ReportRun, built)
        page = uow.session.get(StoredReportFile, (built, "report.html"))
        assert run is not None and page is not None
        columns = [c.key for c in ReportRun.__table__.columns if c.key not in ("id", "scope")]
        for scope in (*list(SCOPES.values())[1:], f"district:{OTHER_DISTRICT}"):
            copy = ReportRun(id=uuid.uuid4(), scope=scope, **{k: getattr(run, k) for k in columns})
            uow.session.add(copy)
            uow.session.add(
                StoredReportFile(
                    report_id=copy.id,
                    name=page.name,
                    media_type=page.media_type,
                    content=page.content,
                )
            )
            world.objects[f"report:{scope}"] = str(copy.id)
        uow.commit()


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        home = Path(tmp_path_factory.mktemp("access")) / "var"
        settings = {
            "SERVICEMONTH_NOTIFY_WEBHOOK_TOKEN": WEBHOOK,
            # fresh pairings of one member, one per row: no cap gets in the way
            "SERVICEMONTH_PAIRING_MAX_NEEDS_PER_MEMBER": "1000",
        }
        with open_backend("embedded", home, monkeypatch, request, **settings) as backend:
            world = _seed(backend)
            yield world
            for http in (world.admin, *world.clients.values()):
                http.close()


# --- requests -----------------------------------------------------------------------------------


@dataclass
class Req:
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes]] | None = None
    token: str | None = None  # instead of the caller's own (a fresh member, a fresh session)


@dataclass
class Call:
    """One caller's request of one row: what it needs to fill the row."""

    w: World
    role: str
    side: str  # in, out or none
    fresh: bool  # the caller may do this: act on objects made for this call

    # the scope's places, as this caller sees them ------------------------------------------
    @property
    def community(self) -> str:
        return {"in": HOME, "out": OTHER_HOME, "none": NO_COMMUNITY}[self.side]

    @property
    def unit(self) -> str:
        return {"in": UNIT, "out": OTHER_UNIT, "none": NO_UNIT}[self.side]

    @property
    def scope(self) -> str:
        """A scope of figures: the caller's own, another district, one that does not exist."""
        own = SCOPES.get(self.role, f"district:{DISTRICT}")
        return {"in": own, "out": f"district:{OTHER_DISTRICT}", "none": f"district:{NO_DISTRICT}"}[
            self.side
        ]

    @property
    def run_scope(self) -> str:
        own = {"admin": "city", "operator": f"district:{DISTRICT}"}.get(
            self.role, f"community:{HOME}"
        )
        return {"in": own, "out": f"community:{OTHER_HOME}", "none": f"community:{NO_COMMUNITY}"}[
            self.side
        ]

    @property
    def member(self) -> str:
        """The member themself, or one in scope; another member (of the same community, for
        a member; of another district, for staff); nobody."""
        if self.side == "none":
            return str(uuid.uuid4())
        if self.side == "in":
            return self.w.me
        return self.w.members["neighbour" if self.role == "member" else "other"]

    @property
    def outsider(self) -> str:
        """Whose objects are out of this caller's scope."""
        return "neighbour" if self.role == "member" else "out"

    def obj(self, kind: str, make: Callable[[], str] | None = None) -> str:
        """A seeded object of this side, or a fresh one when this caller may change it."""
        if self.side == "none":
            return str(uuid.uuid4())
        if self.fresh and make is not None and (self.side == "in" or self.role == "admin"):
            return make()
        if self.side == "in":
            return self.w.objects[f"{kind}:in"]
        return self.w.objects.get(f"{kind}:{self.outsider}") or self.w.objects[f"{kind}:out"]

    def wish(self, state: str) -> str:
        """A wish in ``state``: of HOME (claimed by me) in scope; of the other district (the
        other member's) out of it; for a member out of scope, one they may not act on."""
        if self.side == "none":
            return str(uuid.uuid4())
        claimer = self.w.me if self.side == "in" else self.w.members["other"]
        home = HOME if self.side == "in" else OTHER_HOME
        if self.fresh and (self.side == "in" or self.role == "admin"):
            return self.w.wish(home, state, claimer if state not in _UNCLAIMED else None)
        if self.role == "member" and self.side == "out":
            if state in _UNCLAIMED or state == "confirmed":
                return self.w.objects["wish:collected:out"]
            return self.w.objects["wish:claimed:neighbour"]
        return self.w.objects[f"wish:{state}:{self.side}"]


_UNCLAIMED = ("collected", "submitted", "published")


def _fresh_member(c: Call) -> tuple[str, str | None]:
    """A member to withdraw: new, in scope (with their own token for a member)."""
    if c.side == "none":
        return str(uuid.uuid4()), None
    if c.fresh and (c.side == "in" or c.role == "admin"):
        unit, home = (UNIT, HOME) if c.side == "in" else (OTHER_UNIT, OTHER_HOME)
        new = c.w.register(unit, home)["id"]
        return new, c.w.token("member", new) if c.role == "member" else None
    return c.member, None


def _fresh_registration(c: Call) -> str:
    if c.side == "none":
        return str(uuid.uuid4())
    if c.fresh and (c.side == "in" or c.role == "admin"):
        unit, home = (UNIT, HOME) if c.side == "in" else (OTHER_UNIT, OTHER_HOME)
        return c.w.registration(c.w.register(unit, home), home)
    return c.w.objects[f"registration:{c.side}"]


def _staff_csv(scope: str, phone: str) -> bytes:
    return f"姓名,手机号,电子邮箱,角色,范围\n社区工作人员,{phone},,community,{scope}\n".encode()


def _withdraw(c: Call) -> Req:
    member, token = _fresh_member(c)
    return Req(f"/api/v1/members/{member}", token=token)


def _team_member(c: Call, state: str) -> Req:
    """A team and one of its members: mine in scope, another's out of it."""
    if c.side == "none":  # a missing team, and the member an out-of-scope call names
        team = str(uuid.uuid4())
        member = c.w.members["neighbour" if c.role == "member" else "other"]
    elif c.fresh and (c.side == "in" or c.role == "admin"):
        home, member = (HOME, c.w.me) if c.side == "in" else (OTHER_HOME, c.w.members["other"])
        team = c.w.team(home, member, state)
    elif c.side == "in":
        team, member = c.w.objects["team:in"], c.w.me
    else:
        team = c.w.objects.get(f"team:{c.outsider}") or c.w.objects["team:out"]
        member = c.w.members["neighbour" if c.role == "member" else "other"]
    return Req(f"/api/v1/teams/{team}/members/{member}")


def _record_body(c: Call) -> dict[str, Any]:
    community = HOME if c.role == "member" and c.side != "none" else c.community
    if c.role != "member" and c.side == "out":
        community = OTHER_HOME
    return {
        "member_id": c.member,
        "kind": "home_visit",
        "community_code": community,
        "date": "2016-07-03",
        "hours": 1.5,
    }


def _claimable(c: Call) -> str:
    """A published wish; out of a member's scope: one of HOME, claimed for another member."""
    if c.role == "member" and c.side == "out":
        return c.w.objects["wish:published:in"]
    return c.wish("published")


def _joinable(c: Call) -> str:
    """A team; out of a member's scope: HOME's, joined for another member."""
    if c.role == "member" and c.side == "out":
        return c.w.objects["team:in"]
    return c.obj("team", lambda: c.w.team(c.community))


def _pairing(c: Call) -> str:
    return c.obj("pairing", lambda: c.w.pairing(HOME if c.side == "in" else OTHER_HOME, c.member))


def _report(c: Call) -> str:
    if c.side == "none":
        return str(uuid.uuid4())
    if c.side == "out":
        return c.w.objects[f"report:district:{OTHER_DISTRICT}"]
    return c.w.objects[f"report:{SCOPES.get(c.role, 'city')}"]


# --- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """Who may call a route, and how to fill it for a call."""

    who: frozenset[str]
    fill: Callable[[Call], Req]
    #: the request names something of a scope (else one request per caller)
    scoped: bool = True
    #: callers for whom the route names nothing of theirs to be out of (a member reads
    #: any published wish: they are the members' board)
    unscoped_for: frozenset[str] = frozenset()
    #: callers who see the out-of-scope object (a wish another member claimed is on the
    #: members' board): refused with 403, they learn nothing they could not read
    shown_to: frozenset[str] = frozenset()
    #: an out-of-scope or missing object answered by a report of what was refused (200):
    #: ``refused(body)`` says that nothing was done
    refused: Callable[[Any], bool] | None = None
    #: the sides sent (a directory file has no missing side)
    sides: tuple[str, ...] = ("in", "out", "none")
    #: why the city may make one for a place that does not exist (a known gap, not of access)
    takes_missing: str = ""
    #: whether an out-of-scope call must answer exactly as a missing object does (not for
    #: directory rows, which are public: another district's rows are a 403)
    hidden: bool = True


def r(
    who: frozenset[str] | set[str],
    fill: Callable[[Call], Req],
    **kw: Any,
) -> Row:
    return Row(frozenset(who), fill, **kw)


def fixed(path: str, **kw: Any) -> Callable[[Call], Req]:
    return lambda c: Req(path, **kw)


V = "/api/v1"
NEED_CSV = "标题,类别,所需人数\n助老服务,空巢老人,2\n".encode()
PROJECT_CSV = "项目类型,项目名称\n治安巡逻,夜间巡逻\n".encode()

TABLE: dict[tuple[str, str], Row] = {
    # registration ---------------------------------------------------------------------------
    ("POST", f"{V}/members"): r(
        {"admin", "operator", "unit", "community", "registrant"},
        lambda c: (
            Req(
                f"{V}/members",
                json=support.member_body(
                    next(c.w.seeds),
                    unit_code=c.unit,
                    residence_community_code=c.community,
                    **({"phone": c.w.fresh_phone()} if c.role != "registrant" else {}),
                ),
            )
            if c.role != "registrant"
            else _register_self(c)
        ),
        hidden=False,  # the directory is public: an unknown community is a 422
    ),
    ("GET", f"{V}/members/{{member_id}}"): r(
        {"admin", "operator", "unit", "community", "member"},
        lambda c: Req(f"{V}/members/{c.member}"),
    ),
    ("PATCH", f"{V}/members/{{member_id}}"): r(
        {"admin", "operator", "member"},
        lambda c: Req(f"{V}/members/{c.member}", json={"availability": ["weekend"]}),
    ),
    ("DELETE", f"{V}/members/{{member_id}}"): r({"admin", "operator", "member"}, _withdraw),
    ("POST", f"{V}/registrations/{{registration_id}}/confirm"): r(
        STAFF, lambda c: Req(f"{V}/registrations/{_fresh_registration(c)}/confirm")
    ),
    ("POST", f"{V}/registrations/confirm"): r(
        STAFF,
        lambda c: Req(f"{V}/registrations/confirm", json={"ids": [_fresh_registration(c)]}),
        refused=lambda body: body["confirmed"] == 0,  # each id confirmed, or refused
    ),
    ("POST", f"{V}/registrations/{{registration_id}}/reject"): r(
        STAFF,
        lambda c: Req(
            f"{V}/registrations/{_fresh_registration(c)}/reject", json={"reason": "不在本社区"}
        ),
    ),
    ("GET", f"{V}/registrations"): r(
        STAFF, lambda c: Req(f"{V}/registrations", params={"community_code": c.community})
    ),
    ("POST", f"{V}/directory"): r(
        OPERATORS,
        lambda c: Req(
            f"{V}/directory",
            files={
                "file": (
                    "directory.csv",
                    _directory_rows({"in": DISTRICT}.get(c.side, OTHER_DISTRICT)),
                )
            },
        ),
        sides=("in", "out"),
        hidden=False,  # the directory is public; another district's rows are a 403
    ),
    ("GET", f"{V}/ops/registration"): r(OPERATORS, fixed(f"{V}/ops/registration"), scoped=False),
    ("DELETE", f"{V}/auth/sessions"): r(
        {*ANY, "registrant"},
        lambda c: Req(
            f"{V}/auth/sessions", token=c.w.token(c.role) if c.role != ANONYMOUS else None
        ),
        scoped=False,
    ),
    ("GET", f"{V}/directory/communities"): r(
        {*ANY, "registrant"}, fixed(f"{V}/directory/communities"), scoped=False
    ),
    ("GET", f"{V}/directory/units"): r(
        {*ANY, "registrant"}, fixed(f"{V}/directory/units"), scoped=False
    ),
    ("POST", f"{V}/rosters"): r(
        {"admin", "operator", "unit"},
        lambda c: Req(
            f"{V}/rosters",
            data={"unit_code": c.unit},
            files={"file": ("roster.csv", _roster_csv(HOME, 1, next(c.w.seeds) * 10))},
        ),
    ),
    ("GET", f"{V}/rosters/template.xlsx"): r(
        ANY, fixed(f"{V}/rosters/template.xlsx"), scoped=False
    ),
    ("GET", f"{V}/rosters/{{roster_id}}"): r(
        {"admin", "operator", "unit"}, lambda c: Req(f"{V}/rosters/{c.obj('roster')}")
    ),
    ("GET", f"{V}/rosters/{{roster_id}}/errors.xlsx"): r(
        {"admin", "operator", "unit"}, lambda c: Req(f"{V}/rosters/{c.obj('roster')}/errors.xlsx")
    ),
    ("POST", f"{V}/staff"): r(
        OPERATORS,
        lambda c: Req(
            f"{V}/staff",
            json={
                "name": "社区工作人员",
                "phone": c.w.fresh_phone(),
                "role": "community",
                "scope": f"community:{c.community}",
            },
        ),
        hidden=False,  # another district's community is a 403, a missing one a 422
    ),
    ("GET", f"{V}/staff"): r(
        OPERATORS,
        lambda c: Req(f"{V}/staff", params={"scope": f"community:{c.community}"}),
        refused=lambda body: body == [],  # the caller's district's accounts of that scope
    ),
    ("POST", f"{V}/staff/import"): r(
        OPERATORS,
        lambda c: Req(
            f"{V}/staff/import",
            files={
                "file": ("staff.csv", _staff_csv(f"community:{c.community}", c.w.fresh_phone()))
            },
        ),
        refused=lambda body: body["accepted"] == body["updated"] == 0,  # refused by row
        hidden=False,  # rows of another district's community and of a missing one say so
    ),
    ("GET", f"{V}/staff/{{account_id}}"): r(
        OPERATORS, lambda c: Req(f"{V}/staff/{c.obj('staff')}")
    ),
    ("POST", f"{V}/staff/{{account_id}}/disable"): r(
        OPERATORS, lambda c: Req(f"{V}/staff/{c.obj('staff')}/disable")
    ),
    ("POST", f"{V}/staff/{{account_id}}/enable"): r(
        OPERATORS, lambda c: Req(f"{V}/staff/{c.obj('staff')}/enable")
    ),
    ("GET", f"{V}/directory/units/{{code}}/members"): r(
        {"admin", "operator", "unit"}, lambda c: Req(f"{V}/directory/units/{c.unit}/members")
    ),
    # pairing: wishes ------------------------------------------------------------------------
    ("GET", f"{V}/ops/pairing"): r(OPERATORS, fixed(f"{V}/ops/pairing"), scoped=False),
    ("POST", f"{V}/wishes"): r(
        STAFF,
        lambda c: Req(f"{V}/wishes", json={"community_code": c.community, "title": "买米"}),
    ),
    ("GET", f"{V}/wishes"): r(
        {*STAFF, "member"},
        lambda c: Req(f"{V}/wishes", params={"community_code": c.community}),
        unscoped_for=frozenset({"member"}),  # every published wish is on the members' board
    ),
    ("GET", f"{V}/wishes/{{wish_id}}"): r(
        {*STAFF, "member"},
        lambda c: Req(
            f"{V}/wishes/"
            + (
                c.w.objects["wish:collected:in"]
                if c.role == "member" and c.side == "out"
                else c.wish("published")
            )
        ),
    ),
    ("POST", f"{V}/wishes/{{wish_id}}/submit"): r(
        STAFF, lambda c: Req(f"{V}/wishes/{c.wish('collected')}/submit")
    ),
    ("POST", f"{V}/wishes/{{wish_id}}/publish"): r(
        STAFF, lambda c: Req(f"{V}/wishes/{c.wish('submitted')}/publish")
    ),
    ("POST", f"{V}/wishes/{{wish_id}}/reject"): r(
        STAFF, lambda c: Req(f"{V}/wishes/{c.wish('submitted')}/reject", json={"reason": "重复"})
    ),
    ("POST", f"{V}/wishes/{{wish_id}}/withdraw"): r(
        STAFF, lambda c: Req(f"{V}/wishes/{c.wish('published')}/withdraw", json={"reason": "重复"})
    ),
    ("POST", f"{V}/wishes/{{wish_id}}/claim"): r(
        {*STAFF, "member"},
        lambda c: Req(f"{V}/wishes/{_claimable(c)}/claim", json={"member_id": c.member}),
    ),
    ("POST", f"{V}/wishes/{{wish_id}}/cancel"): r(
        {"member"},
        lambda c: Req(f"{V}/wishes/{c.wish('claimed')}/cancel"),
        shown_to=frozenset({"member"}),  # a claimed wish is on the members' board
    ),
    ("POST", f"{V}/wishes/{{wish_id}}/revoke"): r(
        STAFF, lambda c: Req(f"{V}/wishes/{c.wish('claimed')}/revoke", json={"reason": "未完成"})
    ),
    ("POST", f"{V}/wishes/{{wish_id}}/fulfil"): r(
        {"member"},
        lambda c: Req(f"{V}/wishes/{c.wish('claimed')}/fulfil"),
        shown_to=frozenset({"member"}),  # a claimed wish is on the members' board
    ),
    ("POST", f"{V}/wishes/{{wish_id}}/confirm"): r(
        STAFF, lambda c: Req(f"{V}/wishes/{c.wish('fulfilled')}/confirm")
    ),
    ("POST", f"{V}/wishes/{{wish_id}}/evaluate"): r(
        STAFF, lambda c: Req(f"{V}/wishes/{c.wish('confirmed')}/evaluate", json={"rating": 5})
    ),
    ("GET", f"{V}/members/{{member_id}}/wishes/recommended"): r(
        {*STAFF, "member"}, lambda c: Req(f"{V}/members/{c.member}/wishes/recommended")
    ),
    # pairing: the five ones -----------------------------------------------------------------
    ("POST", f"{V}/activities"): r(
        {*STAFF, "member"}, lambda c: Req(f"{V}/activities", json=_record_body(c))
    ),
    ("GET", f"{V}/activities"): r(
        {*STAFF, "member"},
        lambda c: Req(
            f"{V}/activities",
            params={"member_id": c.member}
            if c.role == "member"
            else {"community_code": c.community},
        ),
    ),
    ("GET", f"{V}/activities/{{record_id}}"): r(
        {*STAFF, "member"}, lambda c: Req(f"{V}/activities/{c.obj('record')}")
    ),
    ("POST", f"{V}/activities/{{record_id}}/verify"): r(
        STAFF,
        lambda c: Req(
            f"{V}/activities/{c.obj('record', lambda: c.w.record(c.community, c.member))}/verify"
        ),
    ),
    ("POST", f"{V}/activities/{{record_id}}/return"): r(
        STAFF,
        lambda c: Req(
            f"{V}/activities/{c.obj('record', lambda: c.w.record(c.community, c.member))}/return",
            json={"reason": "缺少照片"},
        ),
    ),
    ("POST", f"{V}/teams/{{team_id}}/members"): r(
        {*STAFF, "member"},
        lambda c: Req(f"{V}/teams/{_joinable(c)}/members", json={"member_id": c.member}),
    ),
    ("GET", f"{V}/teams/{{team_id}}/members"): r(
        STAFF, lambda c: Req(f"{V}/teams/{c.obj('team')}/members")
    ),
    ("POST", f"{V}/teams/{{team_id}}/members/{{member_id}}/confirm"): r(
        STAFF, lambda c: Req(_team_member(c, "requested").path + "/confirm")
    ),
    ("DELETE", f"{V}/teams/{{team_id}}/members/{{member_id}}"): r(
        {*STAFF, "member"}, lambda c: _team_member(c, "joined")
    ),
    ("GET", f"{V}/members/{{member_id}}/progress"): r(
        {*STAFF, "member", "unit"}, lambda c: Req(f"{V}/members/{c.member}/progress")
    ),
    ("GET", f"{V}/communities/{{code}}/leading-cadres/progress"): r(
        # the route admits a unit's token, but no community lies in a unit's scope
        {*STAFF, "leader"},
        lambda c: Req(f"{V}/communities/{c.community}/leading-cadres/progress"),
    ),
    ("GET", f"{V}/units/{{code}}/leading-cadres/progress"): r(
        {*STAFF, "unit", "leader"},
        lambda c: Req(f"{V}/units/{c.unit}/leading-cadres/progress"),
        # the unit's cadres registered in the caller's scope: none of another district's
        refused=lambda body: body["members"] == [],
    ),
    ("GET", f"{V}/units/{{code}}/progress"): r(
        {"admin", "operator", "unit", "leader"},
        lambda c: Req(f"{V}/units/{c.unit}/progress"),
        refused=lambda body: body == [],  # the unit's members registered in the caller's scope
    ),
    # pairing: publishing and pairing -----------------------------------------------------------
    ("POST", f"{V}/communities/{{code}}/targets"): r(
        STAFF,
        lambda c: Req(
            f"{V}/communities/{c.community}/targets",
            json={"category": "空巢老人", "label": "张三"},
        ),
    ),
    ("GET", f"{V}/communities/{{code}}/targets"): r(
        STAFF, lambda c: Req(f"{V}/communities/{c.community}/targets")
    ),
    ("POST", f"{V}/communities/{{code}}/needs"): r(
        STAFF,
        lambda c: Req(
            f"{V}/communities/{c.community}/needs",
            json={"title": "助老服务", "category": "空巢老人", "volunteers_needed": 1},
        ),
    ),
    ("GET", f"{V}/communities/{{code}}/needs"): r(
        STAFF, lambda c: Req(f"{V}/communities/{c.community}/needs")
    ),
    ("POST", f"{V}/communities/{{code}}/projects"): r(
        STAFF,
        lambda c: Req(
            f"{V}/communities/{c.community}/projects",
            json={"kind": "治安巡逻", "title": "夜间巡逻", "capacity": 6},
        ),
    ),
    ("GET", f"{V}/communities/{{code}}/projects"): r(
        STAFF, lambda c: Req(f"{V}/communities/{c.community}/projects")
    ),
    ("POST", f"{V}/communities/{{code}}/teams"): r(
        STAFF, lambda c: Req(f"{V}/communities/{c.community}/teams", json={"name": "服务队"})
    ),
    ("GET", f"{V}/communities/{{code}}/teams"): r(
        STAFF, lambda c: Req(f"{V}/communities/{c.community}/teams")
    ),
    ("POST", f"{V}/communities/{{code}}/needs/upload"): r(
        STAFF,
        lambda c: Req(
            f"{V}/communities/{c.community}/needs/upload",
            files={"file": ("needs.csv", NEED_CSV)},
        ),
    ),
    ("POST", f"{V}/communities/{{code}}/projects/upload"): r(
        STAFF,
        lambda c: Req(
            f"{V}/communities/{c.community}/projects/upload",
            files={"file": ("projects.csv", PROJECT_CSV)},
        ),
    ),
    ("POST", f"{V}/pairings/run"): r(
        STAFF, lambda c: Req(f"{V}/pairings/run", json={"scope": c.run_scope})
    ),
    ("GET", f"{V}/pairings/runs/{{run_id}}"): r(
        STAFF, lambda c: Req(f"{V}/pairings/runs/{c.obj('run')}")
    ),
    ("GET", f"{V}/members/{{member_id}}/pairings"): r(
        {*STAFF, "member"}, lambda c: Req(f"{V}/members/{c.member}/pairings")
    ),
    ("GET", f"{V}/communities/{{code}}/pairing-report"): r(
        STAFF, lambda c: Req(f"{V}/communities/{c.community}/pairing-report")
    ),
    ("POST", f"{V}/pairings"): r(
        STAFF,
        lambda c: Req(
            f"{V}/pairings",
            json={
                "member_id": c.member,
                "need_id": c.w.need(HOME)
                if c.side == "in"
                else c.w.objects["need:out"]
                if c.side == "out"
                else str(uuid.uuid4()),
            },
        ),
    ),
    ("DELETE", f"{V}/pairings/{{pairing_id}}"): r(
        STAFF, lambda c: Req(f"{V}/pairings/{_pairing(c)}")
    ),
    ("POST", f"{V}/pairings/{{pairing_id}}/decline"): r(
        {"admin", "member"}, lambda c: Req(f"{V}/pairings/{_pairing(c)}/decline")
    ),
    # notify ------------------------------------------------------------------------------------
    ("GET", f"{V}/ops/notify"): r(OPERATORS, fixed(f"{V}/ops/notify"), scoped=False),
    ("GET", f"{V}/contacts"): r(
        OPERATORS,
        lambda c: Req(f"{V}/contacts", params={"scope": f"community:{c.community}"}),
        refused=lambda body: body == [],  # the caller's district's contacts of that scope
    ),
    ("GET", f"{V}/members/{{member_id}}/preferences"): r(
        {"admin", "operator", "member"}, lambda c: Req(f"{V}/members/{c.member}/preferences")
    ),
    ("PUT", f"{V}/members/{{member_id}}/preferences"): r(
        {"admin", "operator", "member"},
        lambda c: Req(f"{V}/members/{c.member}/preferences", json={"sms": True}),
    ),
    ("GET", f"{V}/notifications"): r(
        {"admin", "operator", "unit", "community", "member"},
        lambda c: Req(f"{V}/notifications", params={"member_id": c.member}),
    ),
    ("POST", f"{V}/ops/notify/sweep"): r(OPERATORS, fixed(f"{V}/ops/notify/sweep"), scoped=False),
    ("GET", f"{V}/reminders"): r(OPERATORS, fixed(f"{V}/reminders"), scoped=False),
    ("GET", f"{V}/ops/notify/summary"): r(
        OPERATORS, fixed(f"{V}/ops/notify/summary"), scoped=False
    ),
    # reporting ---------------------------------------------------------------------------------
    ("GET", f"{V}/ops/reporting"): r(OPERATORS, fixed(f"{V}/ops/reporting"), scoped=False),
    ("GET", f"{V}/summary"): r(READERS, lambda c: Req(f"{V}/summary", params={"scope": c.scope})),
    ("GET", f"{V}/summary/ranking"): r(
        READERS, lambda c: Req(f"{V}/summary/ranking", params={"scope": c.scope})
    ),
    ("GET", f"{V}/summary/members"): r(
        READERS, lambda c: Req(f"{V}/summary/members", params={"scope": c.scope})
    ),
    ("POST", f"{V}/ops/reporting/tick"): r(
        OPERATORS, fixed(f"{V}/ops/reporting/tick"), scoped=False
    ),
    ("GET", f"{V}/subscriptions"): r(
        {"admin", "operator", "leader"}, fixed(f"{V}/subscriptions"), scoped=False
    ),
    ("POST", f"{V}/subscriptions"): r(
        {"admin", "operator", "leader"},
        lambda c: Req(
            f"{V}/subscriptions",
            json={"scope": c.scope, "name": "区委办公室", "email": "office@example.org"},
        ),
        # a district that is not one of Luoyang's is refused (422: the list is public);
        # reporting cannot tell a place of Luoyang it has not heard of yet from one that
        # will never come (its places come with the directory's events, and a subscription
        # may come first: tests/integration/test_reporting_runs.py subscribes so)
        hidden=False,
    ),
    ("GET", f"{V}/reports"): r(READERS, fixed(f"{V}/reports"), scoped=False),
    ("GET", f"{V}/reports/{{report_id}}/files/{{name}}"): r(
        {*READERS, NOTIFY}, lambda c: Req(f"{V}/reports/{_report(c)}/files/report.html")
    ),
}


def _register_self(c: Call) -> Req:
    """A registrant registers their own verified number (in), or another one (out)."""
    body = support.member_body(next(c.w.seeds), unit_code=UNIT, residence_community_code=HOME)
    phone = c.w.fresh_phone()
    body["phone"] = phone if c.side == "in" else c.w.fresh_phone()
    return Req(f"{V}/members", json=body, token=c.w.registrant(phone))


#: The routes anyone may call, each checked on its own terms by :func:`check_public`.
PUBLIC = {
    ("POST", f"{V}/auth/codes"),
    ("POST", f"{V}/auth/sessions"),
    ("GET", f"{V}/directory/communities/{{code}}"),
    ("GET", f"{V}/vocabulary"),
    ("POST", f"{V}/providers/{{name}}/receipts"),
    ("POST", f"{V}/providers/{{name}}/replies"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
}


def _operations() -> list[tuple[str, str]]:
    spec = create_app(SERVICES).openapi()
    return [(method.upper(), path) for path, ops in spec["paths"].items() for method in ops]


OPERATIONS = _operations()


def test_every_operation_has_a_row_and_every_row_an_operation() -> None:
    named = set(TABLE) | PUBLIC
    assert not set(TABLE) & PUBLIC
    assert sorted(set(OPERATIONS) - named) == [], "routes missing from the access table"
    assert sorted(named - set(OPERATIONS)) == [], "rows naming routes that no longer exist"


# --- sending and judging ------------------------------------------------------------------------

_IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|U?\d{6,12}")


def _shape(answer: Any) -> tuple[int, str]:
    """What an answer tells: its status and its body, with ids and codes blanked out."""
    return answer.status_code, _IDS.sub("<id>", answer.text)


#: requests the matrix sent (the objects made for its calls aside)
SENT = [0]


def _send(w: World, method: str, caller: str, req: Req) -> Any:
    token = req.token
    if token is None and caller != ANONYMOUS:
        token = w.token(caller) if caller in (NOTIFY, "registrant") else None
    if token is not None:
        http = w.http(token)
    elif caller == ANONYMOUS:
        http = w.clients.setdefault(ANONYMOUS, w.http(None))
    else:
        http = w.client(caller)
    SENT[0] += 1
    return http.request(
        method, req.path, params=req.params, json=req.json, data=req.data, files=req.files
    )


def _verdict(method: str, caller: str, side: str, row: Row, answer: Any) -> str | None:
    """What is wrong with this answer, or None."""
    status = answer.status_code
    if status >= 500:
        return "a server error"
    if caller == ANONYMOUS:
        return None if status == 401 else "anonymous not refused with 401"
    allowed = caller in row.who
    if caller == NOTIFY and not allowed:
        return None if status == 401 else "the report-files token opened another route"
    everywhere = caller in ("admin", NOTIFY)  # the city's scope: nothing is out of it
    if allowed and (side == "in" or (side == "out" and everywhere) or not row.scoped):
        return None if status not in (401, 403, 404) else "an allowed call refused"
    if allowed and side != "in" and status == 200 and row.refused is not None:
        return None if row.refused(answer.json()) else "a call out of scope was done"
    if allowed and side == "none" and everywhere and (method == "GET" or row.takes_missing):
        return None  # the city reads an empty place: nothing to hide from it
    if 200 <= status < 300:
        return "a call not allowed succeeded" if side != "none" else "a missing object accepted"
    if allowed and side == "none" and (everywhere or not row.hidden) and status == 422:
        return None  # a code of the public directory that does not exist
    if status in (403, 404) or (caller == "registrant" and status == 422):
        return None
    return "not refused with 403 or 404"


def _title(answer: Any) -> str:
    """The problem's title and the start of its detail (they name no person)."""
    body = answer.json() if "json" in answer.headers.get("content-type", "") else None
    if not isinstance(body, dict):
        return ""
    return f"{body.get('title', '')}: {str(body.get('detail', ''))[:90]}"


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
@pytest.mark.long
def test_who_may_call_it(method: str, path: str, world: World) -> None:
    if (method, path) in PUBLIC:
        check_public(world, method, path)
        return
    assert (method, path) in TABLE, "a route missing from the access table"
    wrong = _matrix(world, method, TABLE[(method, path)])
    assert not wrong, f"{method} {path}:\n" + "\n".join(wrong)


#: Calls of a route that open more than the route does, with their own rows.
VARIANTS: dict[str, tuple[str, Row]] = {
    "a member's personal data in clear (audited)": (
        "GET",
        r(
            OPERATORS,
            lambda c: Req(f"{V}/members/{c.member}", params={"unmasked": "true"}),
        ),
    ),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.long
def test_who_may_make_a_call_that_opens_more(variant: str, world: World) -> None:
    method, row = VARIANTS[variant]
    wrong = _matrix(world, method, row)
    assert not wrong, f"{variant}:\n" + "\n".join(wrong)


def _matrix(world: World, method: str, row: Row) -> list[str]:
    """Every caller's requests of ``row`` (in, out of scope, missing): what is wrong."""
    wrong: list[str] = []
    for caller in CALLERS:
        scoped = row.scoped and caller not in row.unscoped_for and caller != ANONYMOUS
        shapes: dict[str, tuple[int, str]] = {}
        for side in row.sides if scoped else ("in",):
            call = Call(world, caller, side, fresh=caller in row.who)
            answer = _send(world, method, caller, row.fill(call))
            shapes[side] = _shape(answer)
            problem = _verdict(method, caller, side, row, answer)
            if problem:
                wrong.append(f"{caller} {side}: {answer.status_code} {_title(answer)!r}: {problem}")
        hidden = row.hidden and caller not in row.shown_to and "none" in shapes
        if hidden and caller not in ("admin", NOTIFY) and shapes["out"] != shapes["none"]:
            wrong.append(
                f"{caller}: out of scope answers {shapes['out'][0]}, a missing one "
                f"{shapes['none'][0]} (or their bodies differ): it tells what exists"
            )
    return wrong


def check_public(w: World, method: str, path: str) -> None:
    """The public routes: the same answer for everyone, no 5xx, nothing told about who is
    registered."""
    wrong: list[str] = []
    known = w.phones[w.me]
    for caller in CALLERS:
        token = None if caller == ANONYMOUS else w.token(caller)
        http = w.http(token)
        if path.endswith("/auth/codes"):
            answers = [http.post(path, json={"phone": w.fresh_phone()})]
            if caller == ANONYMOUS:
                answers.append(http.post(path, json={"phone": known}))
            expect = {202}
        elif path.endswith("/auth/sessions"):
            answers = [
                http.post(path, json={"phone": phone, "code": "000000"})
                for phone in (known, w.fresh_phone())
            ]
            expect = {401}
        elif "{code}" in path:
            answers = [http.get(path.replace("{code}", HOME))]
            expect = {200}
            missing = http.get(path.replace("{code}", NO_COMMUNITY))
            if missing.status_code != 404:
                wrong.append(f"{caller}: a missing community answers {missing.status_code}")
        elif "/providers/" in path:
            url = path.replace("{name}", "aliyun")
            body = [{"biz_id": "nothing", "success": True}] if "receipts" in url else []
            refused = [
                http.post(url, json=body),
                http.post(url, params={"token": "not-the-token"}, json=body),
            ]
            wrong += [
                f"{caller}: a callback without the right token answers {a.status_code}"
                for a in refused
                if a.status_code != 401
            ]
            answers = [http.post(url, params={"token": WEBHOOK}, json=body)]
            expect = {200}
        elif path == "/readyz":
            answers = [http.get(path)]
            expect = {200, 503}  # 503: a service not ready, said as such
        else:
            answers = [http.get(path)]
            expect = {200}
        SENT[0] += len(answers)
        wrong += [
            f"{caller}: {a.status_code} (expected {sorted(expect)})"
            for a in answers
            if a.status_code not in expect
        ]
        if len(answers) == 2 and _shape(answers[0])[1] != _shape(answers[1])[1]:
            wrong.append(f"{caller}: a known and an unknown number answer differently")
        http.close()
    assert not wrong, f"{method} {path}:\n" + "\n".join(wrong)
