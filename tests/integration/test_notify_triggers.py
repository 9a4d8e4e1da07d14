"""Messages triggered by other services' events, on both backends."""

from __future__ import annotations

import email
import re
import uuid
from datetime import date, datetime, timedelta
from email import policy
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
from tests.integration import notify_support
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


def add_staff(backend: Any) -> uuid.UUID:
    return notify_support.add_staff(
        backend, "community", f"community:{COMMUNITY}", "李红", "13900001111"
    )


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
    clock: Any,
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


def test_a_claim_expiry_warning_is_urgent_but_waits_for_morning_when_that_is_in_time(
    backend: Any,
    clock: Any,
) -> None:
    member = add_member(backend)
    sms = FakeProvider()
    sender = make_sender(backend, sms)
    early, late = uuid.uuid4(), uuid.uuid4()
    with dispatched() as queue:
        # Expires at 06:00 on the 7th: the warning 24 h before falls in the quiet hours, and
        # their end (08:00 on the 6th) is still in time.
        apply(backend, wish_event("claimed", member, early, claim_expires_at=at(7, 6)))
        clock.set(at(4, 23, 30))  # expires at 07:00 tomorrow: 08:00 would be too late
        apply(backend, wish_event("claimed", member, late, claim_expires_at=at(5, 7)))
        drain(backend, sender, queue)
    with backend.rt("notify").db.session() as session:
        warnings = {
            n.subject: n
            for n in session.scalars(
                select(Notification).where(Notification.kind == "claim_expiring")
            )
        }
    assert all(n.urgent for n in warnings.values())  # kinds.toml: urgent = true
    assert warnings[str(early)].due_at == at(6, 8) and warnings[str(early)].status == "queued"
    assert warnings[str(late)].status == "sent"  # through the quiet hours: no time to wait
    assert [s.kind for s in sms.accepted] == ["claim_expiring"]


def test_a_claim_fulfilled_in_time_gets_no_expiry_reminder(
    backend: Any,
    clock: Any,
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


REPORT_HTML = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>西工区第1周</title></head>
<body style="margin:0"><div><h1>西工区第1周</h1>
<table><tr><td>报到率</td><td>92%</td></tr></table>
<img src="ranking.png" alt="排名图"><img src='progress.png' alt="进度图">
</div></body></html>"""


def write_report(backend: Any, name: str, *, skip: str = "") -> list[ReportFile]:
    """A report's files as reporting writes them: ``<reports>/<id>/report.html`` ..."""
    folder = backend.settings.reports_dir / name
    folder.mkdir(parents=True)
    files = {
        "report.html": ("text/html", REPORT_HTML.encode()),
        "ranking.png": ("image/png", b"\x89PNG\r\n\x1a\n ranking"),
        "progress.png": ("image/png", b"\x89PNG\r\n\x1a\n progress"),
        "report.xlsx": (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            b"PK xlsx",
        ),
    }
    for filename, (_, data) in files.items():
        if filename != skip:
            (folder / filename).write_bytes(data)
    return [ReportFile(path=f"{name}/{f}", media_type=m) for f, (m, _) in files.items()]


def report_event(backend: Any, files: list[ReportFile], **kw: Any) -> ReportGenerated:
    sealed = backend.rt("notify").sealer.seal_json(
        {"name": "王局长", "phone": "13700001234", "email": "leader@example.cn"},
        SealedContact.CONTEXT,
    )
    return ReportGenerated(
        report_id=uuid.uuid4(),
        subscription_id=uuid.uuid4(),
        scope="district:410303",
        period_start=datetime(2016, 6, 26, tzinfo=at(4, 0).tzinfo),
        period_end=datetime(2016, 7, 3, tzinfo=at(4, 0).tzinfo),
        title="西工区第1周",
        headline="报到率92%，双对接率85%。",
        files=files,
        recipient=SealedContact(sealed=sealed, phone_masked="137****1234"),
        **{"channels": ["email", "sms"], **kw},
    )


def test_a_report_goes_by_e_mail_as_the_report_itself_and_by_sms_in_one_line(
    backend: Any,
    clock: Any,
) -> None:
    report = report_event(backend, write_report(backend, "r1"))
    with dispatched() as queue:
        apply(backend, report)
        apply(backend, report.model_copy(update={"report_id": uuid.uuid4(), "failed": True}))
        drain(backend, file_sender(backend), queue)
    emls = sorted((backend.settings.outbox_dir / "email").glob("*.eml"))
    parsed = [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in emls]
    assert len(parsed) == 2
    (ready,) = [m for m in parsed if m["X-Servicemonth-Kind"] == "report_ready"]
    body = ready.get_body(("html",))
    assert body is not None
    html = body.get_content()
    assert "<td>报到率</td><td>92%</td>" in html  # the report itself is the body
    cids = re.findall(r'src=["\']cid:([^"\']+)["\']', html)
    parts = [p for p in ready.walk() if p["Content-ID"]]
    images = {p["Content-ID"].strip("<>"): p.get_filename() for p in parts}
    assert len(cids) == 2 and {images[c] for c in cids} == {"ranking.png", "progress.png"}
    assert 'src="ranking.png"' not in html
    assert html.count("<!DOCTYPE") == html.count("<body") == 1  # its body, in our layout
    (attached,) = list(ready.iter_attachments())
    assert attached.get_filename() == "report.xlsx" and attached.get_content() == b"PK xlsx"
    lines = (backend.settings.outbox_dir / "sms.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and "报到率92%" in "".join(lines)
    assert "leader@example.cn" not in "".join(str(m) for m in parsed)  # masked in the outbox
    assert sorted(kinds(backend)) == ["report_failed", "report_ready"]


def test_a_report_whose_file_is_missing_waits_for_it_then_fails_never_goes_without(
    backend: Any,
    clock: Any,
) -> None:
    files = write_report(backend, "r2", skip="report.xlsx")
    mail = FakeEmail()
    sender = make_sender(backend, email=mail, retry_delay=2.0, max_attempts=3)
    with dispatched() as queue:
        apply(backend, report_event(backend, files, channels=["email"]))
        assert drain(backend, sender, queue, clock=clock) == {"retry": 2, "failed": 1}
    assert mail.sent == []
    with backend.rt("notify").db.session() as session:
        (failed,) = session.scalars(select(Notification)).all()
        errors = session.scalars(
            select(NotificationEvent.error).where(NotificationEvent.notification_id == failed.id)
        ).all()
    assert failed.status == "failed" and "report.xlsx" in (failed.error or "")
    assert sum("report.xlsx" in (e or "") for e in errors) == 3

    # The same once the file has arrived (a shared volume that lagged): it goes, whole.
    late = write_report(backend, "r3", skip="report.xlsx")
    with dispatched() as queue:
        apply(backend, report_event(backend, late, channels=["email"]))
        (waiting,) = queue
        assert drain(backend, sender, queue) == {"retry": 1}
        (backend.settings.reports_dir / "r3" / "report.xlsx").write_bytes(b"PK late")
        clock.advance(timedelta(seconds=2))  # the retry's countdown
        assert drain(backend, sender, [waiting]) == {"sent": 1}
    (sent,) = mail.sent
    assert {a.filename for a in sent.attachments} == {"ranking.png", "progress.png", "report.xlsx"}


def test_withdrawal_erases_the_members_messages_and_their_history(
    backend: Any,
    clock: Any,
) -> None:
    member = add_member(backend)
    with dispatched() as queue:
        apply(backend, wish_event("confirmed", member, uuid.uuid4()))
        drain(backend, make_sender(backend, FakeProvider(), email=FakeEmail()), queue)
    apply(backend, MemberWithdrawn(member_id=member))
    with backend.rt("notify").db.session() as session:
        assert session.scalars(select(Notification)).all() == []
        assert session.scalars(select(NotificationEvent)).all() == []
