"""Scheduled reminders on both backends: the missing items only, each slot once even with two
sweeps racing, and a forecast that matches the reminders the month then queues (and sends,
some merged into digests). The schedulers themselves: tests/integration/test_scheduler.py."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from services import registry
from services.notify import bootstrap, contacts, progress
from services.notify.channels.fakes import RecordingEmailChannel, RecordingSmsProvider
from services.notify.consumers import periodic
from services.notify.forecast import forecast
from services.notify.models import (
    Contact,
    FiveOnesReplica,
    Notification,
    NotificationEvent,
    ReminderRun,
)
from services.notify.reminders import sweep
from services.notify.rendering import render_sms
from services.notify.rules import Rules
from services.notify.sending import Sender, send_notification
from shared.clock import SimulatedClock
from shared.config import CAMPAIGN_TZ, CITY, Settings
from shared.events import (
    WISH_EVENTS,
    ActivityVerified,
    CommunityRef,
    Event,
    MemberRegistered,
    MemberWithdrawn,
    PairingMade,
    SealedContact,
    TeamJoined,
    envelope_for,
)
from shared.pii import mask_phone
from shared.runtime import Runtime
from shared.schedule import hold_lease
from tests.integration.notify_support import apply, staff_saved

COMMUNITY = "410303001001"
UNIT = "U410303001"
KINDS = ("home_visit", "community_activity", "policy_talk", "wish", "team")


def local(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=CAMPAIGN_TZ).astimezone(UTC)


@pytest.fixture
def rt(backend: Any) -> Iterator[Runtime]:
    """Notify's runtime on a simulated clock, a week before the campaign; queued messages
    are recorded instead of handed to Celery."""
    notify = backend.rt("notify")
    notify.clock = SimulatedClock(local(date(2016, 6, 20), 10))
    dispatched: list[uuid.UUID] = []
    with bootstrap.replaced(dispatch=dispatched.append):
        yield notify


def deliver(rt: Runtime, event: Event) -> None:
    """Apply ``event`` as notify's consumer would (twice: a redelivery changes nothing)."""
    envelope = envelope_for(
        event,
        district="410303",
        campaign=rt.settings.campaign,
        producer="test",
        occurred_at=rt.clock.now(),
    )
    for _ in range(2):
        with rt.uow() as uow:
            if isinstance(event, MemberRegistered):
                contacts.keep_contact(event, envelope, uow, rt.sealer)
            for handler in progress.HANDLERS.get(type(event), []):
                handler(event, envelope, uow)
            uow.commit()


def register(
    rt: Runtime,
    name: str,
    *,
    phone: str | None = "13800138000",
    email: str | None = None,
    cadre: bool = False,
    lives_in: str | None = None,
) -> uuid.UUID:
    """A member of the unit registered in its community, and (``lives_in``) in a
    residence community of that community's district."""
    member_id = uuid.uuid4()
    person = {"name": name, "phone": phone, "email": email}
    communities = [(COMMUNITY, "unit")]
    if lives_in is not None:
        communities.append((f"{lives_in}001001", "residence"))
    deliver(
        rt,
        MemberRegistered(
            member_id=member_id,
            unit_code=UNIT,
            unit_district="410303",
            communities=[
                CommunityRef(
                    registration_id=uuid.uuid4(),
                    community_code=code,
                    role=role,
                    district=code[:6],
                )
                for code, role in communities
            ],
            is_leader_cadre=cadre,
            contact=SealedContact(
                sealed=rt.sealer.seal_json(person, SealedContact.CONTEXT),
                phone_masked=mask_phone(phone) if phone else None,
            ),
        ),
    )
    return member_id


def verify(rt: Runtime, member_id: uuid.UUID, *kinds: str) -> None:
    for kind in kinds:
        deliver(
            rt,
            ActivityVerified(
                record_id=uuid.uuid4(),
                member_id=member_id,
                kind=kind,
                community_code=COMMUNITY,
                day=date(2016, 6, 27),
                hours=2.0,
                state="verified",
            ),
        )


def queued(rt: Runtime, **where: Any) -> list[Notification]:
    with rt.uow() as uow:
        query = select(Notification).filter_by(**where).order_by(Notification.created_at)
        found = list(uow.session.scalars(query))
        uow.session.expunge_all()  # keep them readable after the unit of work
        return found


def add_organiser(rt: Runtime) -> uuid.UUID:
    """The unit's organiser, who gets the weekly list of its members who are behind: a
    staff account as registration publishes it, kept by notify's consumer."""
    event = staff_saved(rt.sealer, "unit", f"unit:{UNIT}", "组织员", "13600136000")
    envelope = envelope_for(
        event, district="410303", campaign=rt.settings.campaign, producer="test",
        occurred_at=rt.clock.now(),
    )  # fmt: skip
    with rt.uow() as uow:
        contacts.keep_staff(event, envelope, uow, rt.sealer)
        uow.commit()
    return event.account_id


def test_notify_listens_to_the_events_that_feed_the_replica(rt: Runtime) -> None:
    table = registry.handlers("notify", rt)
    for event_type, handlers in progress.HANDLERS.items():
        assert set(handlers) <= set(table[event_type]), event_type


def test_the_weekly_reminder_lists_exactly_the_missing_items(rt: Runtime) -> None:
    idle = register(rt, "王小明")
    halfway = register(rt, "李红", phone="13800138001")
    done = register(rt, "赵刚", phone="13800138002")
    verify(rt, halfway, "home_visit")
    wish = WISH_EVENTS["confirmed"]
    deliver(
        rt,
        wish(
            wish_id=uuid.uuid4(),
            community_code=COMMUNITY,
            title="一副老花镜",
            state="confirmed",
            member_id=halfway,
        ),
    )
    deliver(
        rt,
        TeamJoined(
            team_id=uuid.uuid4(),
            member_id=halfway,
            community_code=COMMUNITY,
            team_name="平安巡逻队",
            state="confirmed",
        ),
    )
    verify(rt, done, *KINDS)

    result = sweep(rt, now=local(date(2016, 7, 3), 9))

    weekly = {n.member_id: n for n in queued(rt, kind="weekly_progress")}
    assert set(weekly) == {idle, halfway}  # the member who completed all five gets none
    assert weekly[idle].params["missing"] == list(KINDS)
    assert weekly[halfway].params["missing"] == ["community_activity", "policy_talk"]
    # the SMS names exactly those items, in the campaign's words
    rendered = render_sms("weekly_progress", {"name": "李红", **weekly[halfway].params}).text
    assert "政策宣讲" in rendered and "民情家访" not in rendered and "微心愿" not in rendered
    assert result.queued["weekly_progress"] == 2
    # the slots before it were a week late: recorded as skipped, not sent late
    assert "kickoff_eve:2016-06-25" in result.skipped
    assert not queued(rt, kind="kickoff")


def test_a_replayed_or_out_of_order_event_changes_nothing_and_withdrawal_erases(
    rt: Runtime,
) -> None:
    member_id = uuid.uuid4()
    verify(rt, member_id, "policy_talk")  # before the member's registration arrives
    with rt.uow() as uow:
        row = uow.session.get(FiveOnesReplica, member_id)
        assert row is not None and not row.registered and row.policy_talk
    deliver(rt, MemberWithdrawn(member_id=member_id))
    with rt.uow() as uow:
        assert uow.session.get(FiveOnesReplica, member_id) is None


def test_a_member_is_reminded_only_by_the_deployment_serving_where_she_lives(
    rt: Runtime,
) -> None:
    """The city deployed with 涧西区 (410305) apart: a member of a 西工区 unit living in
    涧西区 is reminded by 涧西区's notify alone, though the city keeps her contact for
    her unit's community; members living in districts the city serves are its own."""
    here = register(rt, "王小明", lives_in="410303")
    unknown = register(rt, "李红", phone="13800138001")  # no residence known: told here
    apart = register(rt, "赵刚", phone="13800138002", lives_in="410305")
    rt.settings = Settings({**rt.settings.env, "SERVICEMONTH_SEPARATE_DISTRICTS": "410305"})
    assert rt.settings.district == CITY
    sunday = local(date(2016, 7, 3), 9)

    planned = forecast(rt, now=sunday - timedelta(hours=1)).jobs["weekly_progress"]
    sweep(rt, now=sunday)

    assert {n.member_id for n in queued(rt, kind="weekly_progress")} == {here, unknown}
    # the forecast counts the same two for each weekly slot left
    assert planned.messages["sms"] == 2 * len(planned.slots) > 0
    with rt.uow() as uow:
        assert uow.session.get(Contact, apart) is not None


def test_two_sweeps_racing_hour_by_hour_queue_each_reminder_once(rt: Runtime) -> None:
    """The (job, slot) claim alone: two sweeps at the same simulated instants (the schedulers
    and their lease around them: tests/integration/test_scheduler.py)."""
    members = [register(rt, f"党员{i}", phone=f"1380013{i:04d}") for i in range(6)]
    verify(rt, members[0], *KINDS)
    start = local(date(2016, 6, 25), 0)  # the kick-off's eve to the first weekly message
    hours = [start + timedelta(hours=h) for h in range(24 * 9 + 12)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def scheduler(holder: str) -> None:
        try:
            for now in hours:
                barrier.wait(timeout=60)  # both sweep the same simulated hour together
                sweep(rt, now=now, holder=holder)
        except BaseException as exc:  # reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=scheduler, args=(h,)) for h in ("alpha", "beta")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not errors, errors

    sent = queued(rt)
    per_key = Counter((n.member_id, n.kind, n.slot) for n in sent)
    assert per_key and set(per_key.values()) == {1}
    assert Counter(n.slot for n in sent) == {
        "kickoff_eve:2016-06-25": 6,
        "kickoff_day:2016-06-26": 6,
        "weekly_progress:2016-07-03": 5,  # the one who is done gets none
    }
    with rt.uow() as uow:
        runs = uow.session.execute(select(ReminderRun.job, ReminderRun.holder)).all()
    assert sorted(job for job, _ in runs) == [
        "cadre_reminder",
        "kickoff_day",
        "kickoff_eve",
        "unit_behind",
        "weekly_progress",
    ]


def test_only_one_scheduler_holds_the_lease_until_it_expires(rt: Runtime) -> None:
    clock = rt.clock
    assert isinstance(clock, SimulatedClock)
    ttl = timedelta(seconds=90)
    with rt.uow() as uow:
        assert hold_lease(uow, "scheduler", "alpha", ttl)
    with rt.uow() as uow:
        assert not hold_lease(uow, "scheduler", "beta", ttl)
    clock.advance(timedelta(seconds=60))
    with rt.uow() as uow:
        assert hold_lease(uow, "scheduler", "alpha", ttl)  # renewed
    clock.advance(timedelta(seconds=91))
    with rt.uow() as uow:
        assert hold_lease(uow, "scheduler", "beta", ttl)  # alpha stopped renewing
    with rt.uow() as uow:
        assert not hold_lease(uow, "scheduler", "alpha", ttl)


def test_the_forecast_equals_the_reminders_the_month_then_queues_and_none_is_lost(
    rt: Runtime, backend: Any
) -> None:
    """The forecast counts the messages the reminder schedule will queue. The month around
    it is busier: triggered messages to the same members, quiet hours (here until 09:30, so
    the 08:00 and 09:00 reminders wait) and the daily cap of 2 SMS, which merges a reminder
    into the next morning's digest. Every queued reminder still ends sent, or merged into a
    digest that was sent."""
    clock = rt.clock
    assert isinstance(clock, SimulatedClock)
    names = [f"欧阳志{i}" for i in range(5)]
    members = [register(rt, name, phone=f"1390013{i:04d}") for i, name in enumerate(names)]
    by_mail = register(rt, "上官婉儿", phone=None, email="wan@example.cn")
    cadre = register(rt, "司马光", phone="13700137000", cadre=True)
    verify(rt, members[0], *KINDS)
    verify(rt, members[1], "home_visit", "team")
    verify(rt, members[4], "wish")  # so the wish confirmed below changes no reminder
    verify(rt, cadre, "policy_talk")
    organiser = add_organiser(rt)
    who = dict(zip(members, names, strict=True))
    who |= {by_mail: "上官婉儿", cadre: "司马光", organiser: "组织员"}
    with rt.uow() as uow:  # one member takes SMS no more and has no e-mail: nothing at all
        row = uow.session.get(Contact, members[2])
        assert row is not None
        row.sms_enabled = False
        row.email_masked = None
        uow.commit()

    expected = forecast(rt)
    view = expected.view()
    assert "stays as it is" in view["assumption"]
    assert view["counts"] == "messages the schedule will queue; caps may merge some into digests"

    def pairing(member: uuid.UUID, title: str) -> Event:
        return PairingMade(
            pairing_id=uuid.uuid4(),
            member_id=member,
            kind="need",
            community_code=COMMUNITY,
            subject_id=uuid.uuid4(),
            title=title,
            state="active",
        )

    wish = WISH_EVENTS["confirmed"](
        wish_id=uuid.uuid4(),
        community_code=COMMUNITY,
        title="一副老花镜",
        state="confirmed",
        member_id=members[4],
    )
    # triggered messages: in the quiet hours before a reminder day's morning, and that morning
    triggered: dict[datetime, list[Event]] = {
        local(date(2016, 7, 2), 23): [pairing(members[3], "陪伴空巢老人读报")],
        local(date(2016, 7, 3), 7): [pairing(members[3], "社区义务理发")],
        local(date(2016, 7, 23), 22): [wish],
        local(date(2016, 7, 24), 8): [pairing(members[4], "楼道清洁")],
    }

    # the month, hour by hour, through the real send path (recording providers)
    dispatched: list[uuid.UUID] = []
    sms, mail = RecordingSmsProvider(), RecordingEmailChannel()
    rules = Rules(quiet_start=time(20, 0), quiet_end=time(9, 30), sms_daily_cap=2)
    sender = Sender(rt.sealer, providers=[sms], email=mail, rules=rules)
    now = clock.now()
    with bootstrap.replaced(dispatch=dispatched.append):
        while now < local(date(2016, 8, 1), 0):
            now = clock.advance(timedelta(hours=1))
            for event in triggered.pop(now, []):
                apply(backend, event)  # through notify's consumer, as from the broker
            sweep(rt)
            periodic(rt)  # what waited for the end of the quiet hours, digests
            while dispatched:
                with rt.uow() as uow:
                    send_notification(dispatched.pop(0), uow, sender)
    assert not triggered

    everything = {n.id: n for n in queued(rt)}
    reminders = [n for n in everything.values() if n.slot.split(":")[0] in expected.jobs]
    with rt.uow() as uow:
        deferred = set(
            uow.session.scalars(
                select(NotificationEvent.notification_id).where(
                    NotificationEvent.status == "deferred"
                )
            )
        )

    # the forecast's counts per job are the reminders the schedule queued, channel by channel
    for job in expected.jobs.values():
        got = Counter(
            n.channel if n.status != "opted_out" else "none"
            for n in reminders
            if n.slot.startswith(f"{job.job}:")
        )
        assert (got["sms"], got["email"], got["none"]) == (
            job.messages["sms"],
            job.messages["email"],
            job.messages["none"],
        ), job.job
        # and its SMS segments, had each gone alone (a merged one's went in its digest)
        segments = sum(
            n.segments
            if n.status == "sent"
            else render_sms(n.kind, {"name": who[to], **n.params}).segments
            for n in reminders
            if n.slot.startswith(f"{job.job}:") and n.channel == "sms" and n.status != "opted_out"
            for to in [n.member_id or n.staff_id]
            if to is not None
        )
        assert segments == job.sms_segments, job.job
    assert len(reminders) == sum(sum(j.messages.values()) for j in expected.jobs.values())

    # none lost: each queued reminder was sent, or merged into a digest that was sent
    merged = [n for n in reminders if n.status == "suppressed"]
    for n in reminders:
        if n.status == "opted_out":
            assert n.member_id == members[2], n.slot
        elif n.status == "suppressed":
            assert n.merged_into is not None
            digest = everything[n.merged_into]
            assert (digest.kind, digest.status, digest.member_id) == ("digest", "sent", n.member_id)
        else:
            assert n.status == "sent", (n.slot, n.status)
    assert {(n.member_id, n.slot) for n in merged} == {
        (members[3], "weekly_progress:2016-07-03"),
        (members[4], "countdown:2016-07-24"),
    }
    # the month had more than reminders, and the rules did their work on the reminders too
    others = Counter(n.kind for n in everything.values() if n not in reminders)
    assert others == {"pairing_made": 3, "wish_confirmed": 1, "digest": 2}
    assert all(n.status == "sent" for n in everything.values() if n not in reminders)
    assert {n.slot for n in reminders if n.id in deferred} >= {
        "kickoff_eve:2016-06-25",
        "kickoff_day:2016-06-26",
        "weekly_progress:2016-07-03",
    }
    assert not any(n.id in deferred for n in reminders if n.slot.startswith("unit_behind:"))
    assert organiser in {n.staff_id for n in reminders if n.status == "sent"}
    assert by_mail in {n.member_id for n in reminders if n.channel == "email"}
    assert expected.totals["sms"] > 0 and expected.totals["email"] > 0
    # what left through the providers is what the table says was sent
    assert len(sms.sent) == sum(
        1 for n in everything.values() if n.status == "sent" and n.channel == "sms"
    )
    assert len(mail.sent) == sum(
        1 for n in everything.values() if n.status == "sent" and n.channel == "email"
    )
    with rt.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(ReminderRun)) == 15
