"""The read models' rules, folded in memory: what the live consumer and a rebuild both apply.

A :class:`Fold` holds read-model rows as dictionaries and objects; :data:`FOLDS` says what
each event does to them (the projections: members and where they count, registrations,
pairings, wishes and five-ones records, the directory's places). The live consumer
(:mod:`services.reporting.live`) loads the rows a run of events touches, folds the events
and writes back what changed; a rebuild (:mod:`services.reporting.rebuild`) folds the whole
event log from nothing and writes every row into shadow tables (:meth:`Fold.rows`, in the
columns of the read models). One set of rules, so a rebuild gives the rows the consumer
wrote; the rebuild's test compares them table by table.

Facts that change (a registration's state, a pairing, a wish) are kept as intervals
(:meth:`Fold.change`), so the figures can be read as of any instant. Every rule is
idempotent on state, not only on event id: registration routes ``member.registered`` once
per district a member touches (same payload, different ids), so the same picture may
arrive twice and changes nothing the second time. Intervals get their surrogate ids in the
order they were made (a history is ordered by ``(valid_from, id)``).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from typing import Any

from services.reporting.figures.values import CLAIMED, KINDS
from shared.config import CITY
from shared.events import (
    REGISTRATION_EVENTS,
    WISH_EVENTS,
    ActivityChanged,
    ActivityReturned,
    ActivitySubmitted,
    ActivityVerified,
    CommunityChanged,
    Event,
    MemberRegistered,
    MemberUpdated,
    MemberWithdrawn,
    PairingChanged,
    PairingEnded,
    PairingMade,
    RegistrationChanged,
    UnitChanged,
    WishChanged,
)

#: A member counts in a community while a registration there is in one of these states.
COUNTING = ("submitted", "confirmed")


class Span:
    """One interval of a fact's history (a row of a ``Span`` table)."""

    __slots__ = ("id", "valid_from", "valid_to", "values")

    def __init__(
        self, id: int, valid_from: datetime, valid_to: datetime | None, values: dict[str, Any]
    ) -> None:
        self.id = id
        self.valid_from = valid_from
        self.valid_to = valid_to
        self.values = values


class Scope:
    """One interval of a member counting in a scope (a ``member_scopes`` row)."""

    __slots__ = ("cadre", "id", "reported", "scope", "valid_from", "valid_to")

    def __init__(self, id: int, scope: str, cadre: bool, reported: bool, at: datetime) -> None:
        self.id = id
        self.scope = scope
        self.cadre = cadre
        self.reported = reported
        self.valid_from = at
        self.valid_to: datetime | None = None


class Member:
    """A ``member_facts`` row."""

    __slots__ = ("is_leader_cadre", "name_masked", "unit_code", "unit_district", "withdrawn_at")

    def __init__(self) -> None:
        self.unit_code = ""
        self.unit_district = ""
        self.is_leader_cadre = False
        self.name_masked: str | None = None
        self.withdrawn_at: datetime | None = None


class Record:
    """A ``record_facts`` row."""

    __slots__ = ("community_code", "day", "hours", "kind", "member_id", "state", "verified_at")

    def __init__(self) -> None:
        self.member_id: uuid.UUID | None = None
        self.kind = ""
        self.community_code = ""
        self.day: date | None = None
        self.hours = 0.0
        self.state = ""
        self.verified_at: datetime | None = None


#: The histories a fold keeps: table name → the key column of one history.
HISTORIES = {
    "registration_states": "registration_id",
    "pairing_states": "pairing_id",
    "wish_states": "wish_id",
}
STATUS_COLUMNS = (
    "dual_registered",
    "dual_paired",
    *KINDS,
    "complete",
    "verified_records",
    "hours",
)


class Fold:
    """The read models in memory. ``dirty`` (when not ``None``) collects the keys each
    change touches, table by table, so a catch-up rewrites only those."""

    def __init__(self) -> None:
        self.places: dict[str, tuple[str, str, str, str, str | None]] = {}
        self.members: dict[uuid.UUID, Member] = {}
        self.scopes: dict[uuid.UUID, list[Scope]] = {}
        self.status: dict[uuid.UUID, tuple[Any, ...]] = {}
        self.records: dict[uuid.UUID, Record] = {}
        self.histories: dict[str, dict[uuid.UUID, list[Span]]] = {t: {} for t in HISTORIES}
        # a member's registrations, pairings and records (their ids; filtered on use)
        self.of_member: dict[str, defaultdict[uuid.UUID, set[uuid.UUID]]] = {
            t: defaultdict(set) for t in ("registration_states", "pairing_states", "record_facts")
        }
        self.ids: dict[str, int] = defaultdict(int)
        self.dirty: dict[str, set[Any]] | None = None

    # --- bookkeeping --------------------------------------------------------------------------

    def next_id(self, table: str) -> int:
        self.ids[table] += 1
        return self.ids[table]

    def start_ids(self, table: str, after: int) -> None:
        """Ids of ``table`` continue after ``after`` (what the live table holds)."""
        self.ids[table] = max(self.ids[table], after)

    def touch(self, table: str, key: Any) -> None:
        if self.dirty is not None:
            self.dirty[table].add(key)

    def track(self) -> None:
        """From now on, remember what changes (:attr:`dirty`)."""
        self.dirty = defaultdict(set)

    # --- rows read back (the live consumer's fold starts from what the tables hold) -----------

    def add_member(self, row: tuple[Any, ...]) -> None:
        """A ``member_facts`` row, in :data:`COLUMNS` order."""
        member = self.members[row[0]] = Member()
        (
            _,
            member.unit_code,
            member.unit_district,
            member.is_leader_cadre,
            member.name_masked,
            member.withdrawn_at,
        ) = row

    def add_scope(self, row: tuple[Any, ...]) -> None:
        """A ``member_scopes`` row, in :data:`COLUMNS` order."""
        id, valid_from, valid_to, member_id, scope, cadre, reported = row
        found = Scope(id, scope, cadre, reported, valid_from)
        found.valid_to = valid_to
        self.scopes.setdefault(member_id, []).append(found)

    def add_span(self, table: str, row: tuple[Any, ...]) -> None:
        """A row of one of the :data:`HISTORIES`, in :data:`COLUMNS` order."""
        id, valid_from, valid_to, key, *values = row
        span = Span(id, valid_from, valid_to, dict(zip(COLUMNS[table][4:], values, strict=True)))
        history = self.histories[table].setdefault(key, [])
        history.append(span)
        history.sort(key=lambda r: (r.valid_from, r.id))
        member_id = span.values.get("member_id")
        if member_id is not None and table in self.of_member:
            self.of_member[table][member_id].add(key)

    def add_record(self, row: tuple[Any, ...]) -> None:
        """A ``record_facts`` row, in :data:`COLUMNS` order."""
        record = self.records[row[0]] = Record()
        (
            _,
            record.member_id,
            record.kind,
            record.community_code,
            record.day,
            record.hours,
            record.state,
            record.verified_at,
        ) = row
        self.of_member["record_facts"][record.member_id].add(row[0])

    # --- spans ------------------------------------------------------------------------------

    def change(
        self, table: str, key: uuid.UUID, values: dict[str, Any], at: datetime
    ) -> Span | None:
        """Make ``values`` hold for ``key`` from ``at``: the interval covering ``at`` is cut
        there, a new one starts. Nothing happens when the values already hold (a redelivered
        or repeated state); a change arriving late is slotted in before the later ones. Two
        changes at the same instant leave an empty interval and the last applied holds."""
        history = self.histories[table].setdefault(key, [])
        covering = [
            r for r in history if r.valid_from <= at and (r.valid_to is None or r.valid_to > at)
        ]
        if covering:
            current = covering[-1]
            if all(current.values[k] == v for k, v in values.items()):
                return current
            until = current.valid_to
            current.valid_to = at
        else:
            later = [r.valid_from for r in history if r.valid_from > at]
            until = min(later) if later else None
        row = Span(self.next_id(table), at, until, values)
        history.append(row)
        history.sort(key=lambda r: (r.valid_from, r.id))
        member_id = values.get("member_id")
        if member_id is not None and table in self.of_member:
            self.of_member[table][member_id].add(key)
        self.touch(table, key)
        return row

    def current(self, table: str, key: uuid.UUID) -> Span | None:
        for row in self.histories[table].get(key, ()):
            if row.valid_to is None:
                return row
        return None

    def _current_of(self, table: str, member_id: uuid.UUID) -> Iterator[Span]:
        history = self.histories[table]
        for key in self.of_member[table].get(member_id, ()):
            for row in history[key]:
                if row.valid_to is None and row.values["member_id"] == member_id:
                    yield row

    # --- members and where they count ------------------------------------------------------

    def current_registrations(self, member_id: uuid.UUID) -> list[tuple[str, str, str]]:
        """The member's registrations that count now: (community_code, role, state)."""
        return [
            (r.values["community_code"], r.values["role"], r.values["state"])
            for r in self._current_of("registration_states", member_id)
            if r.values["state"] in COUNTING
        ]

    def settle(self, member_id: uuid.UUID, at: datetime) -> None:
        registrations = self.current_registrations(member_id)
        self.rescope(member_id, at, registrations)
        self.refresh_status(member_id, registrations)

    def rescope(
        self, member_id: uuid.UUID, at: datetime, registrations: list[tuple[str, str, str]]
    ) -> None:
        """Bring the member's scopes to what the member and their registrations say now: the
        city and the unit; each community with a submitted or confirmed registration; the
        districts of those communities and of a county-level unit. Each once, with whether
        the member reported in there (at a community: confirmed there; elsewhere: anywhere)
        and is a leading cadre; a scope whose flags change gets a new interval from ``at``."""
        member = self.members.get(member_id)
        wanted: dict[str, tuple[bool, bool]] = {}
        if member is not None and member.withdrawn_at is None:
            cadre = member.is_leader_cadre
            communities = {code for code, _, _ in registrations}
            confirmed = {code for code, _, state in registrations if state == "confirmed"}
            districts = {member.unit_district} | {c[:6] for c in communities}
            scopes = {"city", f"unit:{member.unit_code}"}
            scopes |= {f"district:{d}" for d in districts if d != CITY}
            wanted = dict.fromkeys(scopes, (cadre, bool(confirmed)))
            wanted |= {f"community:{c}": (cadre, c in confirmed) for c in communities}
        rows = self.scopes.setdefault(member_id, [])
        changed = False
        for row in rows:
            if row.valid_to is not None:
                continue
            if wanted.get(row.scope) == (row.cadre, row.reported):
                del wanted[row.scope]
            else:
                row.valid_to = max(at, row.valid_from)
                changed = True
        for s, (c, r) in sorted(wanted.items()):
            rows.append(Scope(self.next_id("member_scopes"), s, c, r, at))
            changed = True
        if changed:
            self.touch("member_scopes", member_id)

    def refresh_status(
        self, member_id: uuid.UUID, registrations: list[tuple[str, str, str]] | None = None
    ) -> None:
        """Recompute the member's current standing from the current facts."""
        if registrations is None:
            registrations = self.current_registrations(member_id)
        confirmed = {role for _, role, state in registrations if state == "confirmed"}
        paired = {
            r.values["kind"]
            for r in self._current_of("pairing_states", member_id)
            if r.values["state"] == "active"
        }
        count: dict[str, int] = {}
        hours: dict[str, float] = {}
        for record_id in self.of_member["record_facts"].get(member_id, ()):
            record = self.records[record_id]
            if record.member_id == member_id and record.state == "verified":
                count[record.kind] = count.get(record.kind, 0) + 1
                hours[record.kind] = hours.get(record.kind, 0.0) + record.hours
        kinds = set(count)
        status = (
            {"unit", "residence"} <= confirmed,
            {"need", "project"} <= paired,
            *(kind in kinds for kind in KINDS),
            set(KINDS) <= kinds,
            sum(count.values()),
            round(sum(float(h or 0) for h in hours.values()), 2),
        )
        if self.status.get(member_id) != status:
            self.status[member_id] = status
            self.touch("member_status", member_id)

    def record_member(self, event: MemberRegistered, at: datetime) -> None:
        """A member registered or changed: their facts, their registrations as first seen
        (submitted; one seen before is left alone)."""
        member = self.members.get(event.member_id)
        if member is None:
            member = self.members[event.member_id] = Member()
        member.unit_code = event.unit_code
        member.unit_district = event.unit_district
        member.is_leader_cadre = event.is_leader_cadre
        masked = getattr(event, "name_masked", None)
        if masked is not None:
            member.name_masked = masked
        self.touch("member_facts", event.member_id)
        known = self.histories["registration_states"]
        for ref in event.communities:
            if ref.registration_id not in known:
                self.change(
                    "registration_states",
                    ref.registration_id,
                    {
                        "member_id": event.member_id,
                        "community_code": ref.community_code,
                        "role": ref.role,
                        "state": "submitted",
                    },
                    at,
                )
        self.settle(event.member_id, at)

    def record_registration(self, event: RegistrationChanged, at: datetime) -> None:
        self.change(
            "registration_states",
            event.registration_id,
            {
                "member_id": event.member_id,
                "community_code": event.community_code,
                "role": event.role,
                "state": event.state,
            },
            at,
        )
        self.settle(event.member_id, at)

    def forget_member(self, event: MemberWithdrawn, at: datetime) -> None:
        """A withdrawn member stops counting from the moment they withdrew (earlier figures
        stay as they were); their masked name is erased, and their pairings end (pairing
        erases them without events). The log, the tokens and the pseudonym are not
        projections: :mod:`services.reporting.live`."""
        member = self.members.get(event.member_id)
        if member is not None:
            member.withdrawn_at = member.withdrawn_at or at
            member.name_masked = None
            self.touch("member_facts", event.member_id)
        active = [
            (key, r)
            for key in list(self.of_member["pairing_states"].get(event.member_id, ()))
            for r in self.histories["pairing_states"][key]
            if r.valid_to is None
            and r.values["member_id"] == event.member_id
            and r.values["state"] == "active"
        ]
        for key, pairing in active:
            self.change("pairing_states", key, {**pairing.values, "state": "removed"}, at)
        self.settle(event.member_id, at)

    # --- directory ---------------------------------------------------------------------------

    def record_community(self, event: CommunityChanged, at: datetime) -> None:
        self._place("community", event.code, event.name, event.district, None)

    def record_unit(self, event: UnitChanged, at: datetime) -> None:
        self._place("unit", event.code, event.name, event.district, event.level)

    def _place(self, kind: str, code: str, name: str, district: str, level: str | None) -> None:
        scope = f"{kind}:{code}"
        self.places[scope] = (kind, code, name, district, level)
        self.touch("places", scope)

    # --- pairing's facts -------------------------------------------------------------------

    def record_pairing(self, event: PairingChanged, at: datetime) -> None:
        self.change(
            "pairing_states",
            event.pairing_id,
            {
                "member_id": event.member_id,
                "kind": event.kind,
                "community_code": event.community_code,
                "state": event.state,
            },
            at,
        )
        self.refresh_status(event.member_id)

    def record_wish(self, event: WishChanged, at: datetime) -> None:
        """The wish's new state and who holds it: a claimed, fulfilled, confirmed or
        evaluated wish (:data:`~services.reporting.figures.values.CLAIMED`) keeps its member,
        also when the event names nobody; a released one (published again) has none."""
        member_id = event.member_id if event.state in CLAIMED else None
        if member_id is None and event.state in CLAIMED:
            before = self.current("wish_states", event.wish_id)
            member_id = before.values["member_id"] if before is not None else None
        self.change(
            "wish_states",
            event.wish_id,
            {"community_code": event.community_code, "state": event.state, "member_id": member_id},
            at,
        )

    def record_activity(self, event: ActivityChanged, at: datetime) -> None:
        """A service record's state; it counts from the moment it was verified (final: a
        late 'submitted' changes nothing)."""
        row = self.records.get(event.record_id)
        if row is None:
            row = self.records[event.record_id] = Record()
        elif row.state == "verified":
            return
        row.member_id = event.member_id
        row.kind = event.kind
        row.community_code = event.community_code
        row.day = event.day
        row.hours = event.hours
        row.state = event.state
        row.verified_at = at if event.state == "verified" else None
        self.of_member["record_facts"][event.member_id].add(event.record_id)
        self.touch("record_facts", event.record_id)
        if event.state == "verified":
            self.refresh_status(event.member_id)

    # --- the rows ----------------------------------------------------------------------------

    def rows(self, table: str, keys: Iterable[Any] | None = None) -> Iterator[tuple[Any, ...]]:
        """The rows of ``table`` (all, or those of ``keys``), in :data:`COLUMNS` order."""
        if table == "places":
            for scope in self.places if keys is None else keys:
                place = self.places.get(scope)
                if place is not None:
                    yield (scope, *place)
        elif table == "member_facts":
            for member_id in self.members if keys is None else keys:
                m = self.members.get(member_id)
                if m is not None:
                    yield (
                        member_id,
                        m.unit_code,
                        m.unit_district,
                        m.is_leader_cadre,
                        m.name_masked,
                        m.withdrawn_at,
                    )
        elif table == "member_scopes":
            for member_id in self.scopes if keys is None else keys:
                for s in self.scopes.get(member_id, ()):
                    yield (
                        s.id,
                        s.valid_from,
                        s.valid_to,
                        member_id,
                        s.scope,
                        s.cadre,
                        s.reported,
                    )
        elif table == "member_status":
            for member_id in self.status if keys is None else keys:
                status = self.status.get(member_id)
                if status is not None:
                    yield (member_id, *status)
        elif table == "record_facts":
            for record_id in self.records if keys is None else keys:
                r = self.records.get(record_id)
                if r is not None:
                    yield (
                        record_id,
                        r.member_id,
                        r.kind,
                        r.community_code,
                        r.day,
                        r.hours,
                        r.state,
                        r.verified_at,
                    )
        else:
            history = self.histories[table]
            names = COLUMNS[table][4:]
            for key in history if keys is None else keys:
                for span in history.get(key, ()):
                    yield (
                        span.id,
                        span.valid_from,
                        span.valid_to,
                        key,
                        *(span.values[n] for n in names),
                    )


#: Each table's columns, in the order :meth:`Fold.rows` gives them.
COLUMNS: dict[str, tuple[str, ...]] = {
    "places": ("scope", "kind", "code", "name", "district", "level"),
    "member_facts": (
        "member_id",
        "unit_code",
        "unit_district",
        "is_leader_cadre",
        "name_masked",
        "withdrawn_at",
    ),
    "member_scopes": (
        "id",
        "valid_from",
        "valid_to",
        "member_id",
        "scope",
        "is_leader_cadre",
        "reported_in",
    ),
    "member_status": ("member_id", *STATUS_COLUMNS),
    "registration_states": (
        "id",
        "valid_from",
        "valid_to",
        "registration_id",
        "member_id",
        "community_code",
        "role",
        "state",
    ),
    "pairing_states": (
        "id",
        "valid_from",
        "valid_to",
        "pairing_id",
        "member_id",
        "kind",
        "community_code",
        "state",
    ),
    "wish_states": (
        "id",
        "valid_from",
        "valid_to",
        "wish_id",
        "community_code",
        "state",
        "member_id",
    ),
    "record_facts": (
        "record_id",
        "member_id",
        "kind",
        "community_code",
        "day",
        "hours",
        "state",
        "verified_at",
    ),
}
#: The column a catch-up deletes a table's touched rows by.
KEYS = {
    "places": "scope",
    "member_facts": "member_id",
    "member_scopes": "member_id",
    "member_status": "member_id",
    "record_facts": "record_id",
    **HISTORIES,
}

#: A rule: the fold, the event, the instant it occurred (the envelope's).
Rule = Callable[[Fold, Any, datetime], None]

#: What each event does to the read models (the log aside): applied live and on rebuild.
#: Only these events are logged; notifications, team requests and reports go past.
FOLDS: dict[type[Event], Rule] = {
    MemberRegistered: Fold.record_member,
    MemberUpdated: Fold.record_member,
    MemberWithdrawn: Fold.forget_member,
    CommunityChanged: Fold.record_community,
    UnitChanged: Fold.record_unit,
    PairingMade: Fold.record_pairing,
    PairingEnded: Fold.record_pairing,
    ActivitySubmitted: Fold.record_activity,
    ActivityVerified: Fold.record_activity,
    ActivityReturned: Fold.record_activity,
    **dict.fromkeys(REGISTRATION_EVENTS, Fold.record_registration),
    **dict.fromkeys(WISH_EVENTS.values(), Fold.record_wish),
}
