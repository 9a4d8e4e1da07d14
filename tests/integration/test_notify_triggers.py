"""Messages triggered by other services' events, on both backends."""

from __future__ import annotations

import email
import uuid
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from services.notify.models import Notification, NotificationEvent
from shared.events import (
    WISH_EVENTS,
    ActivityReturned,
    MemberWithdrawn,
    PairingMade,
    ReportFile,
    ReportGenerated,
    SealedContact,
)
from tests.integration.notify_support import (
    FakeEmail,
    FakeProvider,
    apply,
    dispatched,
    drain,
    file_sender,
    make_sender,
    sweep,
)
from tests.integration.test_notify_send_rules import COMMUNITY, add_member, at, clock  # noqa: F401
from tests.support import client, issue_token


def add_staff(backend: Any) -> str:
    with client(issue_token(backend, "admin", "city")) as http:
        body = {"role": "community", "scope": f"community:{COMMUNITY}", "name": "李红"}
        created = http.post("/api/v1/contacts", json={**body, "phone": "13900001111"})
    assert created.status_code == 201, created.text
    contact_id: str = created.json()["id"]
    return contact_id


def kinds(backend: Any) -> dict[str, str]:
    with backend.rt("notify").db.session() as session:
        return {n.kind: n.status for n in session.scalars(select(Notification))}


def wish_event(name: str, member: uuid.UUID, claim: uuid.UUID, **kw: Any) -> Any:
    return WISH_EVENTS[name](
        wish_id=uuid.UUID(int=7),
        community_code=COMMUNITY,
        title="为孙女买一套课外读物",
        state=name,
        member_id=member,
        claim_id=claim,
        **kw,
    )


def test_pairing_and_the_wish_lifecycle_reach_the_member_and_the_community(
    backend: Any,
    clock: Any,  # noqa: F811
) -> None:
    add_staff(backend)
    member = add_member(backend)
    sms = FakeProvider()
    sender = make_sender(backend, sms, sms_daily_cap=0)
    claim = uuid.uuid4()
    with dispatched() as queue:
        apply(
            backend,
            PairingMade(
                pairing_id=uuid.uuid4(),
                member_id=member,
                kind="need",
                community_code=COMMUNITY,
                subject_id=uuid.uuid4(),
                title="陪伴空巢老人读报聊天",
                state="active",
            ),
        )
        expires = at(7, 10)
        apply(backend, wish_event("claimed", member, claim, claim_expires_at=expires))
        drain(backend, sender, queue)
        assert {s.kind for s in sms.accepted} == {"pairing_made", "wish_claimed"}
        pairing = next(s for s in sms.accepted if s.kind == "pairing_made")
        assert "李红 13900001111" in pairing.text  # the community's contact
        claimed = next(s for s in sms.accepted if s.kind == "wish_claimed")
        assert claimed.phone == "13900001111" and claimed.params["member"] == "张*"

        clock.set(expires - timedelta(hours=24))  # the reminder before the claim lapses
        sweep(backend)
        drain(backend, sender, queue)
        assert sms.accepted[-1].kind == "claim_expiring"

        apply(backend, wish_event("confirmed", member, claim))
        apply(
            backend,
            ActivityReturned(
                record_id=uuid.uuid4(),
                member_id=member,
                kind="home_visit",
                community_code=COMMUNITY,
                day=date(2016, 7, 4),
                hours=2.0,
                state="returned",
                reason="请补充走访时间",
            ),
        )
        drain(backend, sender, queue)
    assert [s.kind for s in sms.accepted[-2:]] == ["wish_confirmed", "activity_returned"]
    assert "请补充走访时间" in sms.accepted[-1].text


def test_a_claim_fulfilled_in_time_gets_no_expiry_reminder(
    backend: Any,
    clock: Any,  # noqa: F811
) -> None:
    member = add_member(backend)
    claim = uuid.uuid4()
    sms = FakeProvider()
    with dispatched() as queue:
        apply(backend, wish_event("claimed", member, claim, claim_expires_at=at(7, 10)))
        apply(backend, wish_event("fulfilled", member, claim))
        clock.set(at(7, 9))
        sweep(backend)
        drain(backend, make_sender(backend, sms), queue)
    assert sms.accepted == []
    assert kinds(backend) == {"claim_expiring": "suppressed"}


def test_a_report_goes_by_e_mail_with_its_files_and_by_sms_in_one_line(
    backend: Any,
    clock: Any,  # noqa: F811
) -> None:
    reports = backend.settings.reports_dir / "r1"
    reports.mkdir(parents=True)
    (reports / "summary.pdf").write_bytes(b"%PDF-1.4 test")
    (reports / "chart.png").write_bytes(b"\x89PNG\r\n\x1a\n test")
    sealed = backend.rt("notify").sealer.seal_json(
        {"name": "王局长", "phone": "13700001234", "email": "leader@example.cn"},
        SealedContact.CONTEXT,
    )
    report = ReportGenerated(
        report_id=uuid.uuid4(),
        subscription_id=uuid.uuid4(),
        scope="district:410303",
        period_start=datetime(2016, 6, 26, tzinfo=at(4, 0).tzinfo),
        period_end=datetime(2016, 7, 3, tzinfo=at(4, 0).tzinfo),
        title="西工区第1周",
        headline="报到率92%，双对接率85%。",
        files=[
            ReportFile(path="r1/summary.pdf", media_type="application/pdf"),
            ReportFile(path="r1/chart.png", media_type="image/png"),
        ],
        recipient=SealedContact(sealed=sealed, phone_masked="137****1234"),
        channels=["email", "sms"],
    )
    with dispatched() as queue:
        apply(backend, report)
        apply(backend, report.model_copy(update={"report_id": uuid.uuid4(), "failed": True}))
        sender = file_sender(backend)
        drain(backend, sender, queue)
    emls = sorted((backend.settings.outbox_dir / "email").glob("*.eml"))
    parsed = [email.message_from_bytes(p.read_bytes()) for p in emls]
    ready = [m for m in parsed if "附件" in str(m) or m.is_multipart()]
    assert len(emls) == 2 and ready
    names = {part.get_filename() for m in parsed for part in m.walk() if part.get_filename()}
    assert {"summary.pdf", "chart.png"} <= names
    lines = (backend.settings.outbox_dir / "sms.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and "报到率92%" in "".join(lines)
    assert "leader@example.cn" not in "".join(str(m) for m in parsed)  # masked in the outbox
    assert sorted(kinds(backend)) == ["report_failed", "report_ready"]


def test_withdrawal_erases_the_members_messages_and_their_history(
    backend: Any,
    clock: Any,  # noqa: F811
) -> None:
    member = add_member(backend)
    with dispatched() as queue:
        apply(backend, wish_event("confirmed", member, uuid.uuid4()))
        drain(backend, make_sender(backend, FakeProvider(), email=FakeEmail()), queue)
    apply(backend, MemberWithdrawn(member_id=member))
    with backend.rt("notify").db.session() as session:
        assert session.scalars(select(Notification)).all() == []
        assert session.scalars(select(NotificationEvent)).all() == []
