"""Benchmark: notify's send pipeline with a zero-latency provider, against bare provider calls.

``N`` messages to ``N`` members are queued, then each goes through
:func:`services.notify.sending.send_notification` as the send task runs it (open the sealed
contact, check opt-out, quiet hours, the daily cap and the provider's per-number limits
from our own history, the committed claim, render, call, record sent with its history and
its ``notification.sent`` event). The baseline, in the same run, hands the same rendered
SMS straight to the same provider, with none of that. The ratio is the price of sending
exactly once by the rules.

    .venv/bin/python bench/notify_send.py [--messages 2000] [--database URL]

SQLite in a temporary folder by default; ``--database`` takes a PostgreSQL URL of an empty
database (the schema is created).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from services.notify import messages, sending
from services.notify.bulk import queue_message
from services.notify.channels import Limit, OutgoingEmail, OutgoingSms
from services.notify.messages import Recipient
from services.notify.models import Base, Contact
from services.notify.rendering import render_sms
from services.notify.rules import Rules
from shared.clock import SimulatedClock
from shared.config import CAMPAIGN_TZ, load
from shared.events import SealedContact
from shared.migrations import upgrade
from shared.runtime import build


class ZeroLatency:
    """Accepts every SMS at once (Aliyun's per-number limit declared, so it is checked)."""

    name = "zero"
    limits: tuple[Limit, ...] = (Limit("number+template", timedelta(hours=24), 50),)
    settle_after = timedelta(0)

    def __init__(self) -> None:
        self.sent = 0

    def send(self, sms: OutgoingSms) -> str:
        self.sent += 1
        return f"zero:{sms.out_id}"

    def find(self, sms: OutgoingSms, since: datetime) -> str | None:
        return None


class NoEmail:
    name = "none"

    def send(self, mail: OutgoingEmail) -> str:
        raise AssertionError("no e-mail in this benchmark")

    def find(self, mail: OutgoingEmail) -> str | None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--database", default=None)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="notify-bench-"))
    env = {"SERVICEMONTH_HOME": str(home), "SERVICEMONTH_PII_KEY": "22" * 32}
    if args.database:
        env["SERVICEMONTH_NOTIFY_DATABASE_URL"] = args.database
    rt = build("notify", Base.metadata, load(env))
    rt.clock = SimulatedClock(datetime(2016, 7, 4, 10, tzinfo=CAMPAIGN_TZ))
    upgrade("notify", rt.db)

    n = args.messages
    members = [uuid.uuid4() for _ in range(n)]
    sealed = rt.sealer.seal_json(
        {"name": "张三", "phone": "13812348000", "email": None}, SealedContact.CONTEXT
    )
    queued: list[uuid.UUID] = []
    messages.set_dispatch(queued.append)
    with rt.uow() as uow:
        uow.session.execute(
            insert(Contact),
            [
                {
                    "member_id": m,
                    "sealed": sealed,
                    "phone_masked": "138****8000",
                    "phone_hmac": rt.sealer.digest(f"138{i:08d}"),
                    "communities": ["410303001001"],
                    "sms_enabled": True,
                    "email_enabled": True,
                    "updated_at": rt.clock.now(),
                }
                for i, m in enumerate(members)
            ],
        )
        for m in members:
            queue_message(
                uow,
                recipient=Recipient.member(m),
                kind="wish_confirmed",
                subject="bench",
                slot="-",
                params={"wish": "为孙女买一套课外读物"},
            )
        uow.commit()

    provider = ZeroLatency()
    sender = sending.Sender(
        sealer=rt.sealer, providers=[provider], email=NoEmail(), rules=Rules(), district="410303"
    )
    started = time.perf_counter()
    for notification_id in queued:
        with rt.uow() as uow:
            outcome = sending.send_notification(notification_id, uow, sender)
            assert outcome.status == "sent", outcome
    pipeline = time.perf_counter() - started

    bare = ZeroLatency()
    started = time.perf_counter()
    for i in range(n):
        rendered = render_sms("wish_confirmed", {"name": "张三", "wish": "为孙女买一套课外读物"})
        bare.send(
            OutgoingSms(
                out_id=str(i),
                phone="13812348000",
                phone_masked="138****8000",
                kind="wish_confirmed",
                template_code="",
                params=rendered.params,
                text=rendered.text,
                segments=rendered.segments,
            )
        )
    baseline = time.perf_counter() - started

    backend = "postgresql" if args.database else "sqlite"
    print(f"notify send pipeline ({backend}, {n} messages, zero-latency provider)")
    print(f"  pipeline:  {n / pipeline:8.0f} messages/s  ({pipeline:.2f} s)")
    print(f"  baseline:  {n / baseline:8.0f} messages/s  (render + bare provider call)")
    print(f"  ratio:     {baseline / pipeline:8.3f}  (pipeline throughput / baseline)")
    assert provider.sent == n
    rt.db.dispose()


if __name__ == "__main__":
    main()
