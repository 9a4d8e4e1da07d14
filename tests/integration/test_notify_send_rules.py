"""The rules at send time, on both backends: quiet hours, opt-out, daily caps and the
digest, provider limits, e-mail fallback, receipts and "TD" replies."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from services.notify.bootstrap import bootstrap
from services.notify.bulk import queue_message
from services.notify.channels.base import Limit
from services.notify.history import STALE_DISPATCH
from services.notify.messages import Recipient
from services.notify.models import SLOT_LENGTH, SUBJECT_LENGTH, Notification, NotificationEvent
from shared.clock import SimulatedClock
from shared.config import CAMPAIGN_TZ
from shared.events import CommunityRef, MemberRegistered, RegistrationConfirmed, SealedContact
from tests.integration.notify_support import (
    FakeEmail,
    FakeProvider,
    add_staff,
    apply,
    dispatched,
    drain,
    make_sender,
    sweep,
)
from tests.support import client, issue_token

COMMUNITY = "410303001001"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2016, 7, day, hour, minute, tzinfo=CAMPAIGN_TZ)


@pytest.fixture
def webhook_token(backend: Any) -> str:
    """The deployment's webhook token (every backend requires one)."""
    return set_env(backend, SERVICEMONTH_NOTIFY_WEBHOOK_TOKEN="callback-secret")


def set_env(backend: Any, **env: str) -> str:
    rt = backend.rt("notify")
    rt.settings = dataclasses.replace(rt.settings, env={**rt.settings.env, **env})
    return next(iter(env.values()))


@pytest.fixture
def clock(backend: Any) -> SimulatedClock:
    simulated = SimulatedClock(at(4, 10))
    backend.rt("notify").clock = simulated
    return simulated


def add_member(
    backend: Any, phone: str | None = "13812348000", email: str | None = None
) -> uuid.UUID:
    member_id = uuid.uuid4()
    sealed = backend.rt("notify").sealer.seal_json(
        {"name": "张三", "phone": phone, "email": email}, SealedContact.CONTEXT
    )
    event = MemberRegistered(
        member_id=member_id,
        unit_code="U410303001",
        unit_district="410303",
        communities=[
            CommunityRef(
                registration_id=uuid.uuid4(),
                community_code=COMMUNITY,
                role="residence",
                district="410303",
            )
        ],
        contact=SealedContact(sealed=sealed, phone_masked="138****8000" if phone else None),
    )
    assert apply(backend, event) == "applied"
    return member_id


def queue(backend: Any, member_id: uuid.UUID, slot: str, **kw: Any) -> uuid.UUID:
    rt = backend.rt("notify")
    with rt.uow() as uow:
        queued = queue_message(
            uow,
            dispatch=bootstrap(runtime=rt).deps.dispatch,
            recipient=Recipient.member(member_id),
            kind=kw.pop("kind", "wish_confirmed"),
            subject=kw.pop("subject", "-"),
            slot=slot,
            params=kw.pop("params", {"wish": "为孙女买一套课外读物"}),
            **kw,
        )
        uow.commit()
    assert queued is not None
    return queued


def message(backend: Any, notification_id: uuid.UUID) -> Notification:
    with backend.rt("notify").db.session() as session:
        found: Notification | None = session.get(Notification, notification_id)
        assert found is not None
        return found


def test_a_message_due_at_22_00_goes_out_at_08_00_next_morning(
    backend: Any, clock: SimulatedClock
) -> None:
    member = add_member(backend)
    sms = FakeProvider()
    sender = make_sender(backend, sms)
    with dispatched() as dispatch:
        clock.set(at(4, 22))
        late = queue(backend, member, "late")
        assert drain(backend, sender, dispatch) == {"deferred": 1}
        assert sms.accepted == []
        assert message(backend, late).due_at == at(5, 8)

        clock.set(at(5, 7, 59))
        sweep(backend)
        drain(backend, sender, dispatch)
        assert sms.accepted == []  # not yet

        clock.set(at(5, 8))
        sweep(backend)
        assert drain(backend, sender, dispatch) == {"sent": 1}
    assert [s.out_id for s in sms.accepted] == [str(late)]
    assert message(backend, late).sent_at == at(5, 8)


def test_an_urgent_message_goes_out_in_quiet_hours(backend: Any, clock: SimulatedClock) -> None:
    member = add_member(backend)
    sms = FakeProvider()
    clock.set(at(4, 23))
    with dispatched() as dispatch:
        queue(backend, member, "urgent", urgent=True)
        assert drain(backend, make_sender(backend, sms), dispatch) == {"sent": 1}


def test_urgent_bypasses_quiet_hours_but_not_the_daily_cap(
    backend: Any, clock: SimulatedClock
) -> None:
    member = add_member(backend)
    sms = FakeProvider()
    sender = make_sender(backend, sms, sms_daily_cap=1)
    clock.set(at(4, 23))
    with dispatched() as dispatch:
        queue(backend, member, "first", subject="1", urgent=True)
        late = queue(backend, member, "second", subject="2", urgent=True)
        assert drain(backend, sender, dispatch) == {"sent": 1, "suppressed": 1}
    assert len(sms.accepted) == 1 and message(backend, late).merged_into is not None


def test_an_opted_out_channel_gets_nothing_including_what_was_already_queued(
    backend: Any, clock: SimulatedClock
) -> None:
    member = add_member(backend)
    sms = FakeProvider()
    token = issue_token(backend, "member", f"member:{member}")
    with dispatched() as dispatch:
        clock.set(at(4, 22))
        waiting = queue(backend, member, "deferred-one")
        drain(backend, make_sender(backend, sms), dispatch)  # deferred to 08:00
        clock.set(at(4, 23))
        queued = queue(backend, member, "queued-one", urgent=True)  # in the task queue
        with client(token) as http:
            response = http.put(f"/api/v1/members/{member}/preferences", json={"sms": False})
            assert response.status_code == 200 and response.json()["sms"] is False
        clock.set(at(5, 9))
        sweep(backend)
        drain(backend, make_sender(backend, sms), dispatch)
        later = queue(backend, member, "after")  # e-mail is the channel left: none given
    assert sms.accepted == []
    assert message(backend, waiting).status == "opted_out"
    assert message(backend, queued).status == "opted_out"
    assert message(backend, later).status == "opted_out"


def test_a_member_only_reads_and_sets_their_own_preferences(backend: Any) -> None:
    member, other = add_member(backend), add_member(backend)
    with client(issue_token(backend, "member", f"member:{member}")) as http:
        assert http.get(f"/api/v1/members/{member}/preferences").json()["sms"] is True
        assert (
            http.put(f"/api/v1/members/{other}/preferences", json={"sms": False}).status_code == 404
        )
    with client(issue_token(backend, "community", f"community:{COMMUNITY}")) as http:
        assert (
            http.put(f"/api/v1/members/{member}/preferences", json={"sms": False}).status_code
            == 403
        )


def test_messages_over_the_daily_cap_are_merged_into_one_digest_next_morning(
    backend: Any, clock: SimulatedClock
) -> None:
    member = add_member(backend)
    sms = FakeProvider()
    sender = make_sender(backend, sms, sms_daily_cap=2)
    with dispatched() as dispatch:
        ids = [queue(backend, member, f"m{i}", subject=str(i)) for i in range(5)]
        assert drain(backend, sender, dispatch) == {"sent": 2, "suppressed": 3}
        merged = [message(backend, i) for i in ids[2:]]
        digest_id = merged[0].merged_into
        assert digest_id is not None and all(m.merged_into == digest_id for m in merged)
        assert message(backend, digest_id).due_at == at(5, 8)

        clock.set(at(5, 8))
        sweep(backend)
        assert drain(backend, sender, dispatch) == {"sent": 1}
    digest = sms.accepted[-1]
    assert digest.kind == "digest" and len(sms.accepted) == 3
    assert message(backend, digest_id).params["merged"] == 3
    with client(issue_token(backend, "admin", "city")) as http:
        summary = http.get("/api/v1/ops/notify/summary").json()
    assert summary["merged_by_caps"] == 3


def test_provider_limits_are_enforced_before_the_call(backend: Any, clock: SimulatedClock) -> None:
    member = add_member(backend)
    strict = FakeProvider("strict", limits=(Limit("number+content", timedelta(seconds=30), 1),))
    sender = make_sender(backend, strict, sms_daily_cap=0)
    with dispatched() as dispatch:
        first = queue(backend, member, "a", subject="1")
        second = queue(backend, member, "b", subject="2")
        assert drain(backend, sender, dispatch) == {"sent": 1, "deferred": 1}
        assert strict.calls == 1  # the second was never offered to the provider
        assert message(backend, second).due_at == at(4, 10) + timedelta(seconds=30)
        clock.advance(timedelta(seconds=30))
        sweep(backend)
        assert drain(backend, sender, dispatch) == {"sent": 1}
    assert [s.out_id for s in strict.accepted] == [str(first), str(second)]


def test_a_limit_reached_at_one_provider_sends_through_the_other(
    backend: Any, clock: SimulatedClock
) -> None:
    member = add_member(backend)
    daily = (Limit("number", timedelta(days=1), 1),)
    first, second = FakeProvider("first", limits=daily), FakeProvider("second", limits=daily)
    sender = make_sender(backend, first, second, sms_daily_cap=0)
    with dispatched() as dispatch:
        for i in range(3):
            queue(backend, member, f"x{i}", subject=str(i))
        assert drain(backend, sender, dispatch) == {"sent": 2, "rate_limited": 1}
    assert (len(first.accepted), len(second.accepted)) == (1, 1)


def test_a_member_without_a_mobile_gets_e_mail(backend: Any, clock: SimulatedClock) -> None:
    member = add_member(backend, phone=None, email="zhangsan@example.cn")
    sms, mail = FakeProvider(), FakeEmail()
    with dispatched() as dispatch:
        sent = queue(backend, member, "mail")
        assert drain(backend, make_sender(backend, sms, email=mail), dispatch) == {"sent": 1}
    assert sms.accepted == [] and [m.to for m in mail.sent] == ["zhangsan@example.cn"]
    found = message(backend, sent)
    assert found.channel == "email" and found.to_masked == "z***@example.cn"


def test_receipts_are_idempotent_and_never_move_a_status_backwards(
    backend: Any, clock: SimulatedClock, webhook_token: str
) -> None:
    member = add_member(backend)
    sms = FakeProvider("aliyun")
    with dispatched() as dispatch:
        sent = queue(backend, member, "r")
        drain(backend, make_sender(backend, sms), dispatch)
    ok = {"out_id": str(sent), "biz_id": f"aliyun:{sent}", "success": True, "err_code": "DELIVERED"}
    bad = {**ok, "success": False, "err_code": "MK:0001"}
    url = f"/api/v1/providers/aliyun/receipts?token={webhook_token}"
    with client() as http:
        first = http.post(url, json=[ok])
        again = http.post(url, json=[ok, bad])
    assert first.json()["counts"] == {"delivered": 1}
    assert again.json()["counts"] == {"unchanged": 2}
    found = message(backend, sent)
    assert found.status == "delivered"
    with client(issue_token(backend, "admin", "city")) as http:
        (view,) = http.get("/api/v1/notifications", params={"member_id": str(member)}).json()
    assert [h["status"] for h in view["history"]] == ["queued", "sending", "sent", "delivered"]


def test_a_receipt_from_another_provider_touches_nothing(
    backend: Any, clock: SimulatedClock, webhook_token: str
) -> None:
    member = add_member(backend)
    with dispatched() as dispatch:
        sent = queue(backend, member, "aliyun-took-it")
        drain(backend, make_sender(backend, FakeProvider("aliyun")), dispatch)
    report = {"sid": f"aliyun:{sent}", "report_status": "FAIL", "ext": {"out_id": str(sent)}}
    with client() as http:
        answer = http.post(f"/api/v1/providers/tencent/receipts?token={webhook_token}", json=report)
    assert answer.json()["counts"] == {"unknown": 1}
    assert message(backend, sent).status == "sent"


def test_webhooks_need_the_token_on_every_backend(backend: Any) -> None:
    reply = {"mobile": "13812348000", "text": "TD"}
    receipt = {"out_id": str(uuid.uuid4()), "success": True}
    with client() as http:  # without the key every callback is refused, naming it
        for path, body in (("replies", reply), ("receipts", [receipt])):
            refused = http.post(f"/api/v1/providers/aliyun/{path}", json=body)
            assert refused.status_code == 503
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["key"] == "SERVICEMONTH_NOTIFY_WEBHOOK_TOKEN"
        token = set_env(backend, SERVICEMONTH_NOTIFY_WEBHOOK_TOKEN="s3cret")
        wrong = http.post("/api/v1/providers/aliyun/replies?token=guess", json=reply)
        right = http.post(f"/api/v1/providers/aliyun/replies?token={token}", json=reply)
    assert wrong.status_code == 401 and right.status_code == 200


def test_a_td_reply_opts_the_number_out_of_sms(
    backend: Any, clock: SimulatedClock, webhook_token: str
) -> None:
    member = add_member(backend)
    sms = FakeProvider()
    with client() as http:
        reply = {"mobile": "13812348000", "nationcode": "86", "text": "TD", "sign": "x"}
        url = f"/api/v1/providers/tencent/replies?token={webhook_token}"
        assert http.post(url, json=reply).json()["opted_out"] == 1
    with dispatched() as dispatch:
        after = queue(backend, member, "td")
        drain(backend, make_sender(backend, sms), dispatch)
    assert sms.accepted == [] and message(backend, after).status == "opted_out"


def test_community_staff_hear_of_reports_in_once_a_day_with_the_count(
    backend: Any, clock: SimulatedClock
) -> None:
    add_staff(backend, "community", f"community:{COMMUNITY}", "李红", "13900001111")
    sms = FakeProvider()
    with dispatched() as dispatch:
        for _ in range(3):
            member = add_member(backend)
            apply(
                backend,
                RegistrationConfirmed(
                    registration_id=uuid.uuid4(),
                    member_id=member,
                    community_code=COMMUNITY,
                    role="residence",
                    state="confirmed",
                ),
            )
        drain(backend, make_sender(backend, sms), dispatch)  # the three welcomes
        clock.set(at(4, 17))
        sweep(backend)
        drain(backend, make_sender(backend, sms), dispatch)
    staff = [s for s in sms.accepted if s.kind == "members_reported_in"]
    assert len(staff) == 1 and staff[0].params["count"] == "3"
    assert staff[0].phone == "13900001111"
    with backend.rt("notify").db.session() as session:
        kinds = list(session.scalars(select(Notification.kind).order_by(Notification.kind)))
    assert kinds.count("welcome") == 3


def history_of(backend: Any, notification_id: uuid.UUID) -> list[NotificationEvent]:
    with backend.rt("notify").db.session() as session:
        return list(
            session.scalars(
                select(NotificationEvent)
                .where(NotificationEvent.notification_id == notification_id)
                .order_by(NotificationEvent.id)
            )
        )


LONG_WISH = "为社区独居老人更换厨房水龙头并检查燃气管道" * 8


def test_an_sms_too_long_fails_with_the_reason_instead_of_sticking_in_sending(
    backend: Any, clock: SimulatedClock
) -> None:
    member = add_member(backend)
    sms = FakeProvider()
    with dispatched() as dispatch:
        long = queue(backend, member, "long", params={"wish": LONG_WISH})
        assert drain(backend, make_sender(backend, sms), dispatch) == {"failed": 1}
    assert sms.calls == 0 and message(backend, long).status == "failed"
    last = history_of(backend, long)[-1]
    assert last.status == "failed" and last.error and "segments" in last.error


def test_an_sms_too_long_goes_by_e_mail_when_the_member_has_an_address(
    backend: Any, clock: SimulatedClock
) -> None:
    member = add_member(backend, email="zhangsan@example.cn")
    sms, mail = FakeProvider(), FakeEmail()
    with dispatched() as dispatch:
        long = queue(backend, member, "long", params={"wish": LONG_WISH})
        assert drain(backend, make_sender(backend, sms, email=mail), dispatch) == {"sent": 1}
    assert sms.calls == 0 and [m.kind for m in mail.sent] == ["wish_confirmed"]
    assert LONG_WISH in mail.sent[0].text
    found = message(backend, long)
    assert (found.channel, found.to_masked) == ("email", "z***@example.cn")
    assert "by e-mail" in (history_of(backend, long)[-2].detail or "")


def test_subject_and_slot_are_cut_to_the_columns_they_are_stored_in(
    backend: Any, clock: SimulatedClock
) -> None:
    member = add_member(backend)
    with dispatched():
        long = queue(backend, member, "s" * 300, subject="x" * 300)
    found = message(backend, long)
    assert (len(found.subject), len(found.slot)) == (SUBJECT_LENGTH, SLOT_LENGTH)
    assert (SUBJECT_LENGTH, SLOT_LENGTH) == (120, 100)


def test_the_sweep_hands_over_only_what_no_task_is_expected_for(
    backend: Any, clock: SimulatedClock
) -> None:
    member = add_member(backend)
    sms = FakeProvider(timeouts=1.0)
    sender = make_sender(backend, sms, retry_delay=20.0)
    with dispatched() as dispatch:
        handed = queue(backend, member, "handed")
        assert dispatch == [handed]
        sweep(backend)
        assert dispatch == [handed]  # just handed to a task: not again
        dispatch.clear()
        clock.advance(STALE_DISPATCH + timedelta(seconds=1))
        sweep(backend)
        assert dispatch == [handed]  # that task was lost: handed over again
        dispatch.clear()
        assert drain(backend, sender, [handed]) == {"retry": 1}  # timed out: back in 20 s
        found = message(backend, handed)
        assert found.due_at == clock.now() + timedelta(seconds=20)  # the backoff holds it
        clock.advance(timedelta(seconds=20))
        sweep(backend)
        assert dispatch == []  # the retry's own countdown brings it, not the sweep
        clock.advance(STALE_DISPATCH + timedelta(seconds=1))
        sweep(backend)
        assert dispatch == [handed]  # ... unless that retry was lost
