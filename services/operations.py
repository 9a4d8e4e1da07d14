"""The operator's commands: ``servicemonth status`` and ``servicemonth dead-letters``.

``status`` reads, per service, what waits where: the event queue's depth and the
dead-letter queue (read passively, the dead letters handed back), the outbox's unsent rows
and the oldest one's age, and for reporting the last report run. ``dead-letters`` lists,
replays and drops what a service's consumer could not apply (:mod:`shared.deadletters`).
Nothing shown holds personal data. Part of the composition root: it reads every service.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import click
from kombu.connection import Connection
from kombu.exceptions import OperationalError as KombuOperationalError
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from services import registry
from shared import deadletters
from shared.bus import SUBSCRIPTIONS, connect, dead_letter_queue, event_queue
from shared.config import SERVICES, Settings, settings
from shared.db import outbox_table
from shared.pii import error_line

SERVICE = click.Choice(SERVICES)
#: What a broker that does not answer raises (amqp: refused or reset connections).
BROKER_DOWN = (KombuOperationalError, ConnectionError, OSError)


# --- status ---------------------------------------------------------------------------------


def outbox_backlog(service: str) -> dict[str, Any]:
    """The outbox rows not yet confirmed by the broker, and how old the oldest is."""
    rt = registry.runtime(service)
    outbox = outbox_table(rt.db.metadata)
    unsent = outbox.c.sent_at.is_(None)
    with rt.db.reader() as session:
        count = session.scalar(select(func.count()).select_from(outbox).where(unsent)) or 0
        oldest = session.scalar(select(func.min(outbox.c.created_at)).where(unsent))
    age = (rt.clock.now() - oldest).total_seconds() if oldest is not None else None
    return {
        "unsent": count,
        "oldest_unsent_at": oldest.isoformat() if oldest is not None else None,
        "oldest_unsent_age_seconds": round(max(age, 0.0), 1) if age is not None else None,
    }


def last_report_run() -> dict[str, str | None] | None:
    from services.reporting.views import last_run

    with registry.runtime("reporting").read() as uow:
        return last_run(uow)


def service_status(service: str, config: Settings) -> dict[str, Any]:
    """What ``service`` has waiting: queue depths, outbox backlog, dead letters. A broker
    or database that does not answer is said so, and the rest is still read."""
    found: dict[str, Any] = {"service": service}
    try:
        found |= broker_status(service, config)
    except BROKER_DOWN as exc:
        found["broker_error"] = error_line(exc)
    try:
        found["outbox"] = outbox_backlog(service)
        if service == "reporting":
            found["last_report_run"] = last_report_run()
    except SQLAlchemyError as exc:
        found["database_error"] = error_line(exc)
    return found


def broker_status(service: str, config: Settings) -> dict[str, Any]:
    """The depths of ``service``'s event and dead-letter queues and the dead letters'
    reasons, read without taking anything off."""
    found: dict[str, Any] = {}
    with connect(config, service) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
        if SUBSCRIPTIONS[service]:
            queue = event_queue(service, config)
            found["event_queue"] = {"name": queue.name, "depth": deadletters.depth(conn, queue)}
        else:
            found["event_queue"] = None  # it listens to nothing
        dead = dead_letter_queue(service, config)
        count = deadletters.depth(conn, dead)
        letters = deadletters.peek(conn, service, config) if count else []
        reasons = Counter(letter.reason for letter in letters)
        found["dead_letters"] = {
            "queue": dead.name,
            "count": count,
            "reasons": [{"reason": r, "count": n} for r, n in reasons.most_common()],
        }
    return found


def _count(value: int | None, waiting: str = "") -> str:
    return "队列尚未创建" if value is None else f"{value} 条{waiting}"


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} 秒"
    if seconds < 7200:
        return f"{seconds / 60:.0f} 分钟"
    return f"{seconds / 3600:.1f} 小时"


def status_lines(found: dict[str, Any]) -> list[str]:
    """``service_status`` for people, in Chinese."""
    lines = [found["service"]]
    if "broker_error" in found:
        lines.append(f"  消息代理不可用：{found['broker_error']}")
    elif found["event_queue"] is None:
        lines.append("  事件队列：无（不订阅事件）")
    else:
        queue = found["event_queue"]
        lines.append(f"  事件队列 {queue['name']}：{_count(queue['depth'], '待处理')}")
    if "database_error" in found:
        lines.append(f"  数据库不可用：{found['database_error']}")
    else:
        outbox = found["outbox"]
        oldest = outbox["oldest_unsent_age_seconds"]
        since = f"，最早一条已等待 {_age(oldest)}" if oldest is not None else ""
        lines.append(f"  发件箱：{outbox['unsent']} 条未发出{since}")
    if "dead_letters" in found:
        dead = found["dead_letters"]
        lines.append(f"  死信 {dead['queue']}：{_count(dead['count'])}")
        lines += [f"    {r['count']} × {r['reason']}" for r in dead["reasons"]]
    if "last_report_run" in found:
        run = found["last_report_run"]
        if run is None:
            lines.append("  最近一次报告：尚无")
        else:
            finished = f"，完成于 {run['finished_at']}" if run["finished_at"] else ""
            lines.append(
                f"  最近一次报告：{run['state']}（{run['scope']}），开始于 {run['claimed_at']}"
                f"{finished}"
            )
    return lines


@click.command()
@click.argument("services", nargs=-1, type=SERVICE)
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of lines.")
def status(services: tuple[str, ...], as_json: bool) -> None:
    """Per service (default: all four): the event queue's depth, the outbox's unsent events
    and the oldest one's age, dead letters with their reasons, and reporting's last report
    run. Queues are read passively; nothing is taken off them."""
    config = settings()
    found = [service_status(name, config) for name in services or SERVICES]
    if as_json:
        document = {"deployment": config.deployment, "services": found}
        click.echo(json.dumps(document, ensure_ascii=False, indent=2))
        return
    click.echo(f"部署 {config.deployment}")
    for item in found:
        click.echo("\n".join(status_lines(item)))


# --- dead letters ---------------------------------------------------------------------------


@contextlib.contextmanager
def broker(config: Settings, service: str) -> Iterator[Connection]:
    """A connection to ``service``'s broker; one that does not answer ends the command
    with one line."""
    try:
        with connect(config, service) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
            yield conn
    except BROKER_DOWN as exc:
        raise click.ClickException(f"消息代理不可用：{error_line(exc)}") from None


@click.group("dead-letters")
def dead_letters() -> None:
    """What a service's consumer could not apply: list, replay or drop it."""


def _letter_lines(letter: deadletters.DeadLetter) -> list[str]:
    body = json.dumps(letter.body, ensure_ascii=False, sort_keys=True)
    return [
        f"{letter.id}  {letter.event_type}  死信时间 {letter.dead_at or '未知'}",
        f"  原因：{letter.reason}",
        f"  内容：{body}",
    ]


def _ids(ids: tuple[str, ...], everything: bool) -> set[str] | None:
    if bool(ids) == everything:
        raise click.UsageError("give --id ID (one or more) or --all")
    return None if everything else set(ids)


@dead_letters.command("list")
@click.argument("service", type=SERVICE)
@click.option("--json", "as_json", is_flag=True, help="A JSON list instead of lines.")
def list_(service: str, as_json: bool) -> None:
    """Show every dead letter of SERVICE, oldest first, with its id, event type, reason
    and time, personal data masked; they all stay on the queue."""
    config = settings()
    with broker(config, service) as conn:
        letters = deadletters.peek(conn, service, config)
    if as_json:
        click.echo(json.dumps([x.view() for x in letters], ensure_ascii=False, indent=2))
        return
    click.echo(f"{service}：{len(letters)} 条死信")
    for letter in letters:
        click.echo("\n".join(_letter_lines(letter)))


@dead_letters.command()
@click.argument("service", type=SERVICE)
@click.option("--id", "ids", multiple=True, help="A dead letter's id (as listed); repeatable.")
@click.option("--all", "everything", is_flag=True, help="Every dead letter of SERVICE.")
def replay(service: str, ids: tuple[str, ...], everything: bool) -> None:
    """Put dead letters back on SERVICE's event queue for its consumer to apply (once: it
    skips an event it applied before). Each leaves the dead-letter queue only after the
    broker confirmed the republish. Fix the cause first, or they come straight back."""
    chosen = _ids(ids, everything)
    config = settings()
    with broker(config, service) as conn:
        try:
            done = deadletters.replay(
                conn,
                service,
                config,
                chosen,
                on_replayed=lambda x: click.echo(f"已重放 {x.id}  {x.event_type}"),
            )
        except deadletters.UnknownDeadLetter as exc:
            raise click.ClickException(f"没有这些死信（未做任何操作）：{exc}") from None
        except deadletters.NoEventQueue as exc:
            raise click.ClickException(
                f"事件队列 {exc} 不存在（{service} 的消费进程从未启动，或它不订阅事件），"
                "未做任何操作"
            ) from None
    click.echo(f"{service}：重放 {len(done)} 条死信")


@dead_letters.command()
@click.argument("service", type=SERVICE)
@click.option("--id", "ids", multiple=True, help="A dead letter's id (as listed); repeatable.")
@click.option("--all", "everything", is_flag=True, help="Every dead letter listed now.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def drop(service: str, ids: tuple[str, ...], everything: bool, yes: bool) -> None:
    """Remove dead letters of SERVICE for good (asks first unless --yes). --all removes
    those there when asked, not any that arrive meanwhile."""
    chosen = _ids(ids, everything)
    config = settings()
    with broker(config, service) as conn:
        letters = deadletters.peek(conn, service, config)
        wanted = {x.id for x in letters} if chosen is None else chosen
        missing = sorted(wanted - {x.id for x in letters})
        if missing:
            raise click.ClickException(f"没有这些死信（未做任何操作）：{', '.join(missing)}")
        if not wanted:
            click.echo(f"{service}：没有死信")
            return
        for letter in letters:
            if letter.id in wanted:
                click.echo(f"{letter.id}  {letter.event_type}  {letter.reason}")
        if not yes:
            click.confirm(f"永久删除以上 {len(wanted)} 条死信？", abort=True)
        try:
            dropped = deadletters.drop(conn, service, config, wanted)
        except deadletters.UnknownDeadLetter as exc:
            raise click.ClickException(f"死信已变化，未做任何操作：{exc}") from None
    click.echo(f"{service}：删除 {len(dropped)} 条死信")
