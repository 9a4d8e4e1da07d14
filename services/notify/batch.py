"""Send many messages at once, exactly once: claims and outcomes written per batch, the
provider calls concurrent.

:func:`send_many` is what the batch send task runs with the ids the dispatch handed over
(:func:`services.notify.bulk.hand_over`). It keeps :mod:`.sending`'s protocol and only
changes how many messages each step covers:

1. **Claim** ``BATCH`` messages in one transaction: the rows are read with their
   members' contacts and locked (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock
   SQLite takes at ``BEGIN IMMEDIATE``); the facts the policy reads — the SMS recently gone
   to these recipients and numbers, the providers' health — are loaded once for the batch,
   and each message claimed counts against the next ones of the batch (daily cap,
   per-number limits). Every message the policy sends by SMS now is rendered and moved
   ``queued|deferred → sending`` (the conditional UPDATE on the status and attempts read,
   as :func:`.messages.move`, run as one executemany); the claims and their history commit
   before any provider is called.
2. **Call** the providers from a thread pool (they are blocking HTTP clients), at most
   :data:`CALLS` calls at once in the process and a provider's own ``concurrency`` (when
   it declares one) at once each. No transaction is open meanwhile; the next batch is
   claimed while this one's calls are in flight.
3. **Record** the outcomes of the batch in one transaction: ``sent`` with the reference,
   history, ``notification.sent`` events and the providers' health. A failed call goes
   through :func:`.sending.failed_attempt` (retry or failover, as for one message).

A crash between a call and its outcome leaves the message ``sending``: the sweep hands it
over once stranded and :func:`.sending.send_notification` asks the provider
(``find``) before anything is resent — as for a message sent alone. Everything that is not
the common case (a message tried before, stranded, e-mail, quiet hours, the daily cap's
digest, a rendering error, another worker holding the row) goes through
:func:`.sending.send_notification` one by one after the batch, with the same rules.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, insert, select, text, union, update
from sqlalchemy.orm import load_only
from sqlalchemy.orm.attributes import set_committed_value

from services.notify import health, policy
from services.notify.channels.base import (
    OutgoingSms,
    ProviderError,
    SmsProvider,
    TransientProviderError,
)
from services.notify.messages import SENT_LIKE, WAITING
from services.notify.models import Contact, Notification, NotificationEvent
from services.notify.recipients import Person, person_of, render_params
from services.notify.rendering import RenderError, render_sms
from services.notify.rules import day_bounds, local_day
from services.notify.sending import (
    BUSY,
    Outcome,
    Sender,
    failed_attempt,
    message_facts,
    outgoing_sms,
    providers_now,
    send_notification,
    sent,
)
from shared.db import UnitOfWork
from shared.events import NotificationSent
from shared.pii import error_line, redact
from shared.runtime import Runtime

__all__ = ["BATCH", "CALLS", "SEND_BATCH_TASK", "send_many"]

log = logging.getLogger(__name__)

SEND_BATCH_TASK = "notify.send_batch"
#: Messages claimed (and recorded) per transaction.
BATCH = 250
#: Provider calls in flight at once in one process (providers answer in 50–300 ms).
CALLS = 128
#: Seconds a claimed message's call may wait for a thread before it is given up (retried
#: later): half the time after which the sweep takes a ``sending`` message for stranded.
LATE = policy.STRANDED_SENDING.total_seconds() / 2

#: What the batch reads of a message (and what :mod:`.sending` reads when an outcome goes
#: through it) and of a member's contact (:func:`.recipients.person_of`): nothing more is
#: loaded, converted or kept.
_READ = (
    Notification.id,
    Notification.status,
    Notification.attempts,
    Notification.due_at,
    Notification.attempted_at,
    Notification.tried,
    Notification.recipient_kind,
    Notification.member_id,
    Notification.staff_id,
    Notification.sealed_to,
    Notification.phone_hmac,
    Notification.kind,
    Notification.channel,
    Notification.urgent,
    Notification.params,
    Notification.to_masked,
    Notification.provider,
)
_CONTACT = (Contact.sealed, Contact.sms_enabled, Contact.email_enabled)
_NOTIFICATIONS = Notification.metadata.tables[Notification.__tablename__]
_HISTORY = NotificationEvent.metadata.tables[NotificationEvent.__tablename__]


@dataclass
class _Claimed:
    """A message claimed in this batch, and what goes to its provider."""

    n: Notification
    provider: SmsProvider
    sms: OutgoingSms
    attempts: int = 0  # as claimed (the message's attempts as read, plus this one)
    at: datetime | None = None  # when claimed
    #: when claimed, by this process's monotonic clock: a call that has not started within
    #: :data:`LATE` is not made (the sweep could take the message for stranded meanwhile)
    claimed: float = field(default_factory=time.monotonic)


@dataclass
class _Called:
    """A claimed message's call, in flight or answered: the ``index``-th of the calls a
    thread makes one after the other (``future``)."""

    claimed: _Claimed
    future: Future[list[str | Exception]]
    index: int

    def result(self) -> str:
        """The provider's reference; raises what the call raised."""
        answer = self.future.result()[self.index]
        if isinstance(answer, Exception):
            raise answer
        return answer


# --- the process's calls ------------------------------------------------------------------


class _Calls:
    """The thread pool the provider calls run in (one per process, made after any fork),
    and a semaphore per provider that declares a ``concurrency``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._pool: ThreadPoolExecutor | None = None
        self._limits: dict[str, threading.BoundedSemaphore] = {}

    def submit(self, claimed: list[_Claimed]) -> list[_Called]:
        """Start the batch's calls: as many at once as the pool has threads, each thread
        making its share one after the other (the same waves as one task per call, with
        far fewer hand-overs between threads)."""
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pool = ThreadPoolExecutor(CALLS, thread_name_prefix="notify-call")
                self._pid, self._limits = os.getpid(), {}
            pool = self._pool
            limits = [self._limit(c.provider) for c in claimed]
        threads = min(len(claimed), CALLS)
        called: list[_Called] = []
        for first in range(threads):
            share = list(range(first, len(claimed), threads))
            future = pool.submit(_calls, [(claimed[i], limits[i]) for i in share])
            called += [_Called(claimed[i], future, k) for k, i in enumerate(share)]
        return called

    def _limit(self, provider: SmsProvider) -> threading.BoundedSemaphore | None:
        concurrency = getattr(provider, "concurrency", None)
        if not concurrency:
            return None
        if provider.name not in self._limits:
            self._limits[provider.name] = threading.BoundedSemaphore(int(concurrency))
        return self._limits[provider.name]


_CALLS = _Calls()


def _calls(
    share: list[tuple[_Claimed, threading.BoundedSemaphore | None]],
) -> list[str | Exception]:
    """One thread's calls, in turn: each one's reference, or the error it raised."""
    answers: list[str | Exception] = []
    for claimed, limit in share:
        try:
            if time.monotonic() - claimed.claimed > LATE:
                raise TransientProviderError("not called in time after its claim; tried again")
            if limit is None:
                answers.append(claimed.provider.send(claimed.sms))
            else:
                with limit:
                    answers.append(claimed.provider.send(claimed.sms))
        except Exception as exc:  # each call its own outcome
            answers.append(exc)
    return answers


# --- the batch --------------------------------------------------------------------------------


def send_many(
    notification_ids: Sequence[uuid.UUID], rt: Runtime, sender: Sender
) -> dict[uuid.UUID, Outcome]:
    """Move every message of ``notification_ids`` as far as it can go now; each one's
    outcome, as :func:`.sending.send_notification` would answer for it."""
    outcomes: dict[uuid.UUID, Outcome] = {}
    alone: list[uuid.UUID] = []
    in_flight: list[_Called] = []
    ids = list(dict.fromkeys(notification_ids))
    for start in range(0, len(ids), BATCH):
        claimed = _claim(ids[start : start + BATCH], rt, sender, outcomes, alone)
        calls = _CALLS.submit(claimed) if claimed else []
        if in_flight:  # the previous batch's calls ran while this one was claimed
            _record(in_flight, rt, sender, outcomes)
        in_flight = calls
    if in_flight:
        _record(in_flight, rt, sender, outcomes)
    for notification_id in alone:
        with rt.uow() as uow:
            outcomes[notification_id] = send_notification(notification_id, uow, sender)
    return outcomes


def _claim(
    ids: Sequence[uuid.UUID],
    rt: Runtime,
    sender: Sender,
    outcomes: dict[uuid.UUID, Outcome],
    alone: list[uuid.UUID],
) -> list[_Claimed]:
    """Claim the messages of ``ids`` that go by SMS now, in one transaction committed
    before any call; the others get their outcome, or are left to the one-message path."""
    with rt.uow() as uow:
        now = uow.now()
        rows = uow.session.execute(
            select(Notification, Contact)
            .outerjoin(Contact, Contact.member_id == Notification.member_id)
            .where(Notification.id.in_(ids))
            .options(load_only(*_READ), load_only(*_CONTACT))
            .with_for_update(of=Notification, skip_locked=True)
            .execution_options(populate_existing=True)
        ).all()
        found = {n.id for n, _ in rows}
        alone += [i for i in ids if i not in found]  # gone, or held by another transaction
        ready: list[tuple[Notification, Person]] = []
        for n, contact in rows:
            if n.status == "sending":
                if policy.stranded(n.attempted_at, now):
                    alone.append(n.id)  # reopened and reconciled there
                else:
                    outcomes[n.id] = BUSY
            elif n.status not in WAITING:
                outcomes[n.id] = Outcome(n.status)
            elif n.due_at is not None and n.due_at > now:
                outcomes[n.id] = Outcome("waiting")
            elif n.tried:
                alone.append(n.id)  # an earlier attempt: its providers are asked first
            else:
                person = person_of(n, uow, sender.sealer, contact=contact)
                if person is None:
                    alone.append(n.id)
                else:
                    ready.append((n, person))
        claimed = _decide(ready, uow, sender, now, alone)
        if not claimed:
            return []
        if not _write_claims(claimed, uow, now):
            uow.session.rollback()  # someone moved one of them meanwhile: one at a time
            alone += [c.n.id for c in claimed]
            return []
        uow.commit()
    for c in claimed:
        c.attempts, c.at = c.n.attempts + 1, now
    return claimed


def _decide(
    ready: list[tuple[Notification, Person]],
    uow: UnitOfWork,
    sender: Sender,
    now: datetime,
    alone: list[uuid.UUID],
) -> list[_Claimed]:
    """The policy's decision for each message, from the facts loaded once for the batch;
    the ones it sends by SMS now, rendered."""
    if not ready:
        return []
    providers = providers_now(uow, sender)
    recent = _Recent(uow, [n for n, _ in ready], providers, now, sender)
    by_name = {p.name: p for p in sender.providers}
    claimed: list[_Claimed] = []
    for n, person in ready:
        facts = message_facts(n, person.reachable, now, sender, providers, recent.of(n))
        decision = policy.decide(facts)
        if not isinstance(decision, policy.SendSms):
            alone.append(n.id)  # e-mail, quiet hours, the digest, limits, opt-outs
            continue
        provider = by_name[decision.provider]
        try:
            rendered = render_sms(n.kind, render_params(n, person, uow, sender.sealer))
        except RenderError:  # too long (e-mail instead?) or broken: decided there
            alone.append(n.id)
            continue
        sms = outgoing_sms(n, person, rendered, provider.name)
        claimed.append(_Claimed(n, provider, sms))
        recent.add(n, provider.name, now)  # the next ones of the batch count it
    return claimed


class _Recent:
    """The SMS gone (or going) out that the daily cap and the providers' per-number limits
    count for a batch's messages: one query for the batch (what
    :func:`.messages.recent_sms` asks for one message), grown by the batch's own claims."""

    def __init__(
        self,
        uow: UnitOfWork,
        batch: list[Notification],
        providers: list[policy.Provider],
        now: datetime,
        sender: Sender,
    ) -> None:
        self.day = day_bounds(local_day(now)) if sender.rules.sms_daily_cap > 0 else None
        self.since = policy.limits_since(providers, now)
        self.by_member: dict[uuid.UUID, list[policy.RecentSms]] = defaultdict(list)
        self.by_staff: dict[uuid.UUID, list[policy.RecentSms]] = defaultdict(list)
        self.by_phone: dict[str, list[policy.RecentSms]] = defaultdict(list)
        wanted = []
        if self.day is not None:
            in_day = and_(
                Notification.channel == "sms",
                Notification.attempted_at >= self.day[0],
                Notification.attempted_at < self.day[1],
            )
            member_ids = {n.member_id for n in batch if n.member_id is not None}
            staff_ids = {n.staff_id for n in batch if n.staff_id is not None}
            if member_ids:
                wanted.append(and_(Notification.member_id.in_(member_ids), in_day))
            if staff_ids:
                wanted.append(and_(Notification.staff_id.in_(staff_ids), in_day))
        phones = {n.phone_hmac for n in batch if n.phone_hmac is not None}
        if self.since is not None and phones:
            wanted.append(
                and_(Notification.phone_hmac.in_(phones), Notification.attempted_at > self.since)
            )
        if not wanted:
            return
        columns = (
            Notification.id,
            Notification.member_id,
            Notification.staff_id,
            Notification.phone_hmac,
            Notification.channel,
            Notification.provider,
            Notification.kind,
            Notification.attempted_at,
        )
        # One SELECT per condition, UNIONed: each is answered from its own index (member,
        # staff, phone), not by filtering every message ever sent (what one SELECT with
        # the conditions ORed gets from the planner once most messages are sent).
        rows = uow.session.execute(
            union(*(select(*columns).where(Notification.status.in_(SENT_LIKE), w) for w in wanted))
        )
        for _, member, staff, phone, channel, provider, kind, at in rows:
            if at is not None:
                self._keep(policy.RecentSms(member, staff, phone, channel, provider, kind, at))

    def _keep(self, sms: policy.RecentSms) -> None:
        if sms.member_id is not None:
            self.by_member[sms.member_id].append(sms)
        if sms.staff_id is not None:
            self.by_staff[sms.staff_id].append(sms)
        if sms.phone_hmac is not None:
            self.by_phone[sms.phone_hmac].append(sms)

    def of(self, n: Notification) -> list[policy.RecentSms]:
        """What the policy reads for ``n`` (a superset is harmless: it applies its own
        conditions to every row; the rows are SENT_LIKE, never ``n`` itself)."""
        found: dict[int, policy.RecentSms] = {}
        groups: Iterable[list[policy.RecentSms]] = (
            self.by_member.get(n.member_id, []) if n.member_id is not None else [],
            self.by_staff.get(n.staff_id, []) if n.staff_id is not None else [],
            self.by_phone.get(n.phone_hmac, []) if n.phone_hmac is not None else [],
        )
        for group in groups:
            for sms in group:
                found[id(sms)] = sms
        return list(found.values())

    def add(self, n: Notification, provider: str, now: datetime) -> None:
        """``n`` claimed for ``provider`` now: the batch's next messages count it."""
        sms = policy.RecentSms(n.member_id, n.staff_id, n.phone_hmac, "sms", provider, n.kind, now)
        self._keep(sms)


# --- the writes -----------------------------------------------------------------------------


#: Per-row columns of the batch updates, with their PostgreSQL array types.
_ARRAYS = {
    "id": "uuid[]",
    "status": "text[]",
    "attempts": "integer[]",
    "to_masked": "text[]",
    "provider_ref": "text[]",
    "segments": "integer[]",
}


def _update_each(
    uow: UnitOfWork,
    changes: list[dict[str, Any]],
    per_row: tuple[str, ...],
    *,
    count_attempt: bool = False,
    **common: Any,
) -> int:
    """The conditional UPDATE of :func:`.messages.move` for many rows: each change names
    the row (``id``), the ``status`` and ``attempts`` it was read with, and its own values
    of the ``per_row`` columns; ``common`` is set on every row, and ``count_attempt`` adds
    one to each row's attempts. How many rows changed.

    PostgreSQL: one ``UPDATE … FROM unnest(arrays)`` (one round trip, and one statement
    text whatever the batch's size: compiled once); SQLite, in process: an executemany."""
    if not changes:
        return 0
    if uow.db.is_sqlite:
        statement = (
            update(_NOTIFICATIONS)
            .where(
                _NOTIFICATIONS.c.id == bindparam("b_id"),
                _NOTIFICATIONS.c.status == bindparam("b_status"),
                _NOTIFICATIONS.c.attempts == bindparam("b_attempts"),
            )
            .values(**{name: bindparam(f"b_{name}") for name in per_row}, **common)
        )
        if count_attempt:
            statement = statement.values(attempts=_NOTIFICATIONS.c.attempts + 1)
        params = [{f"b_{key}": value for key, value in change.items()} for change in changes]
        return int(uow.session.execute(statement, params).rowcount)  # type: ignore[attr-defined]
    names = ("id", "status", "attempts", *per_row)
    arrays = ", ".join(f"CAST(:a_{name} AS {_ARRAYS[name]})" for name in names)
    sets = ", ".join(
        [f"{name} = v.{name}" for name in per_row]
        + [f"{name} = :c_{name}" for name in common]
        + (["attempts = n.attempts + 1"] if count_attempt else [])
    )
    pg_statement = text(
        f"UPDATE {_NOTIFICATIONS.name} AS n SET {sets}"
        f" FROM unnest({arrays}) AS v({', '.join(names)})"
        " WHERE n.id = v.id AND n.status = v.status AND n.attempts = v.attempts"
    ).bindparams(*(bindparam(f"c_{name}", type_=_NOTIFICATIONS.c[name].type) for name in common))
    arguments = {f"a_{name}": [c[name] for c in changes] for name in names}
    arguments.update({f"c_{name}": value for name, value in common.items()})
    return int(uow.session.execute(pg_statement, arguments).rowcount)  # type: ignore[attr-defined]


def _by_provider(items: Iterable[Any], provider: Any) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = defaultdict(list)
    for item in items:
        groups[provider(item).name].append(item)
    return groups


def _history(n: Notification, at: datetime, status: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "notification_id": n.id,
        "member_id": n.member_id,
        "at": at,
        "status": status,
        "provider": None,
        "reference": None,
        "error": None,
        "detail": None,
    }
    row.update(values)
    if row["detail"]:
        row["detail"] = redact(row["detail"])[:200]
    return row


_HISTORY_ARRAYS = {
    "notification_id": "uuid[]",
    "member_id": "uuid[]",
    "at": "timestamptz[]",
    "status": "text[]",
    "provider": "text[]",
    "reference": "text[]",
    "error": "text[]",
    "detail": "text[]",
}
_PG_HISTORY = text(
    f"INSERT INTO {_HISTORY.name} ({', '.join(_HISTORY_ARRAYS)})"
    f" SELECT * FROM unnest({', '.join(f'CAST(:{k} AS {t})' for k, t in _HISTORY_ARRAYS.items())})"
)


def _insert_history(uow: UnitOfWork, rows: list[dict[str, Any]]) -> None:
    """Append the batch's history lines: PostgreSQL, one INSERT … SELECT FROM unnest(arrays)
    (one statement, not one per line); SQLite, an executemany."""
    if uow.db.is_sqlite:
        uow.session.execute(insert(_HISTORY), rows)
    else:
        uow.session.execute(
            _PG_HISTORY, {name: [row[name] for row in rows] for name in _HISTORY_ARRAYS}
        )


def _write_claims(claimed: list[_Claimed], uow: UnitOfWork, now: datetime) -> bool:
    """Every claim of the batch (``queued|deferred → sending``, as :func:`.sending.claim`)
    and its history line; False when one of them was no longer as read."""
    for name, group in _by_provider(claimed, lambda c: c.provider).items():
        changes = [
            {
                "id": c.n.id,
                "status": c.n.status,
                "attempts": c.n.attempts,
                "to_masked": c.sms.phone_masked,
            }
            for c in group
        ]
        done = _update_each(
            uow,
            changes,
            ("to_masked",),
            status="sending",
            count_attempt=True,
            attempted_at=now,
            provider=name,
            tried=[name],  # only messages never tried come this way
            channel="sms",
        )
        if done != len(changes):
            return False
    _insert_history(
        uow,
        [
            _history(
                c.n, now, "sending", provider=c.provider.name, detail=f"attempt {c.n.attempts + 1}"
            )
            for c in claimed
        ],
    )
    return True


def _as_claimed(c: _Claimed) -> Notification:
    """``c.n`` in step with its claimed row, for what compares with it (the outcome's
    conditional UPDATE through :mod:`.sending`); only on the paths that need it."""
    for key, value in {
        "status": "sending",
        "attempts": c.attempts,
        "attempted_at": c.at,
        "provider": c.provider.name,
        "tried": [c.provider.name],
        "channel": "sms",
        "to_masked": c.sms.phone_masked,
    }.items():
        set_committed_value(c.n, key, value)
    return c.n


def _record(
    calls: list[_Called], rt: Runtime, sender: Sender, outcomes: dict[uuid.UUID, Outcome]
) -> None:
    """The batch's outcomes: the accepted ones in one transaction, failures one by one."""
    accepted: list[tuple[_Claimed, str]] = []
    failed: list[tuple[_Claimed, ProviderError]] = []
    for call in calls:
        try:
            accepted.append((call.claimed, call.result()))
        except ProviderError as exc:
            failed.append((call.claimed, exc))
        except Exception as exc:  # as a worker dying in the call
            # Ambiguous: left ``sending``; once stranded the provider is asked (find).
            log.error("provider call ended without an answer: %s", error_line(exc))
            outcomes[call.claimed.n.id] = Outcome("sending")
    if accepted and not _write_sent(accepted, rt, sender):
        for c, ref in accepted:  # one changed meanwhile: each on its own conditions
            with rt.uow() as uow:
                outcomes[c.n.id] = sent(
                    _as_claimed(c),
                    uow,
                    sender,
                    c.provider.name,
                    ref,
                    segments=c.sms.segments,
                    healthy=True,
                )
    else:
        for c, _ in accepted:
            outcomes[c.n.id] = Outcome("sent")
    for c, error in failed:
        with rt.uow() as uow:
            outcomes[c.n.id] = failed_attempt(
                _as_claimed(c), uow, sender, c.provider.name, error, permanent=not error.retryable
            )


def _write_sent(accepted: list[tuple[_Claimed, str]], rt: Runtime, sender: Sender) -> bool:
    """``sending → sent`` for every accepted call, with history, events and health, in one
    transaction; False (nothing written) when one was no longer ``sending`` as claimed."""
    with rt.uow() as uow:
        now = uow.now()
        for name, group in _by_provider(accepted, lambda a: a[0].provider).items():
            changes = [
                {
                    "id": c.n.id,
                    "status": "sending",
                    "attempts": c.attempts,
                    "provider_ref": ref[:100],
                    "segments": c.sms.segments,
                }
                for c, ref in group
            ]
            done = _update_each(
                uow,
                changes,
                ("provider_ref", "segments"),
                status="sent",
                provider=name,
                sent_at=now,
                error=None,
                dispatched_at=None,
            )
            if done != len(changes):
                uow.session.rollback()
                return False
        _insert_history(
            uow,
            [
                _history(c.n, now, "sent", provider=c.provider.name, reference=ref[:100])
                for c, ref in accepted
            ],
        )
        uow.emit_many(
            [
                (
                    NotificationSent(
                        notification_id=c.n.id,
                        member_id=c.n.member_id,
                        kind=c.n.kind,
                        channel="sms",
                        status="sent",
                        provider=c.provider.name,
                    ),
                    sender.district,
                )
                for c, _ in accepted
            ]
        )
        counts: dict[str, int] = defaultdict(int)
        for c, _ in accepted:
            counts[c.provider.name] += 1
        for name in sorted(counts):  # last, in one order: every worker writes these rows
            health.provider_ok(uow, name, count=counts[name])
        uow.commit()
    return True
