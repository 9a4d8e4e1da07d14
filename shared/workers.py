"""Celery, one app per service: the service's own background work on the shared broker.

Each service's tasks go to its own queue (``servicemonth.<deployment>.<service>.tasks``).
Tasks are acknowledged late and requeued when a worker dies, so every task must be
idempotent; publishes wait for the broker's confirm. Nothing runs eagerly. A task whose
database does not answer is retried with backoff (:class:`RetryWhileDatabaseDown`), not
acknowledged as failed: a pairing run queued while PostgreSQL restarted stayed ``queued``
for ever.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task, signals
from structlog.contextvars import bind_contextvars, unbind_contextvars

from shared.config import Settings, settings
from shared.db import DATABASE_DOWN, is_outage

#: How often a task is tried again while its database is away (1, 2, 4 … 60 s apart:
#: about 20 minutes in all).
OUTAGE_RETRIES = 25
OUTAGE_BACKOFF_MAX = 60


class RetryWhileDatabaseDown(Task):  # type: ignore[misc]
    """Every task's base: tried again while its database is away
    (:func:`shared.db.is_outage`, as the event consumer and the API decide it); any other
    error, a missing table or a bad statement included, fails it at once. A task's own
    ``autoretry_for`` is for its other transient errors and must not name
    :data:`~shared.db.DATABASE_DOWN` (it would retry what is no outage)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except DATABASE_DOWN as exc:
            if not is_outage(exc):
                raise
            countdown = min(2**self.request.retries, OUTAGE_BACKOFF_MAX)
            raise self.retry(exc=exc, countdown=countdown, max_retries=OUTAGE_RETRIES) from None


def task_queue(service: str, config: Settings) -> str:
    return f"servicemonth.{config.deployment}.{service}.tasks"


def control_exchange(deployment: str) -> str:
    """Celery's remote-control namespace: ``<it>.pidbox`` and ``reply.<it>.pidbox``
    exchanges, ``<node>.<it>.pidbox`` queues. Per deployment, so a broadcast (``celery
    control shutdown``) reaches only this deployment's workers, and its RabbitMQ user, whose
    permissions name only the deployment's own resources, may declare them."""
    return f"servicemonth.{deployment}.control"


def event_exchange(deployment: str) -> str:
    """Celery's worker and task events (Flower): the exchange, and its queues' prefix."""
    return f"servicemonth.{deployment}.celeryev"


def make_celery(service: str, config: Settings | None = None) -> Celery:
    import shared.fstransport  # noqa: F401 - registers the sfs:// transport

    config = config or settings()
    app = Celery(f"servicemonth.{service}", set_as_current=False, task_cls=RetryWhileDatabaseDown)
    embedded = config.broker_url(service).startswith("sfs://")
    app.conf.update(
        broker_url=config.broker_url(service),
        broker_transport_options=config.broker_options(service),
        broker_connection_retry_on_startup=True,
        task_default_queue=task_queue(service, config),
        task_default_exchange=task_queue(service, config),
        task_default_routing_key=task_queue(service, config),
        control_exchange=control_exchange(config.deployment),
        event_exchange=event_exchange(config.deployment),
        event_queue_prefix=event_exchange(config.deployment),
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        task_always_eager=False,
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        # The filesystem broker has no fanout for remote control or events.
        worker_enable_remote_control=not embedded,
        # Task events (sent, started, succeeded …) let Flower show the workers and tasks.
        worker_send_task_events=not embedded,
        task_send_sent_event=not embedded,
        timezone="Asia/Shanghai",
        enable_utc=True,
    )
    return app


def _log_with_task_id(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """Every line a task logs carries its id and name (its correlation id in the logs)."""
    bind_contextvars(task_id=task_id, task=getattr(task, "name", None))


def _log_without_task_id(**_: Any) -> None:
    unbind_contextvars("task_id", "task")


def _keep_our_logging(**_: Any) -> None:
    """Answering ``setup_logging`` keeps Celery's hands off logging: every line, the task
    loggers' too, goes through :mod:`shared.logs` (JSON, masked), also in a worker started
    by ``celery`` itself rather than ``servicemonth worker``."""
    from shared import logs

    logs.configure(settings())


signals.setup_logging.connect(_keep_our_logging, weak=False)
signals.task_prerun.connect(_log_with_task_id, weak=False)
signals.task_postrun.connect(_log_without_task_id, weak=False)


_APPS: dict[tuple[str, int], Celery] = {}


def app_for(service: str, config: Settings) -> Celery:
    """A client app for ``service`` on ``config``'s broker (to enqueue by task name)."""
    key = (service, id(config))
    if key not in _APPS:
        _APPS[key] = make_celery(service, config)
    return _APPS[key]


def send_task(service: str, config: Settings, task: str, *args: Any) -> None:
    """Enqueue ``task`` (by name, with ``args``: ids, not objects) on ``service``'s own
    queue; the broker confirms before this returns.

    It goes through the queue's own exchange (named like the queue), which a deployment's
    RabbitMQ user may write to: without an exchange Celery publishes a direct queue's task
    through the default exchange, which that user is refused (it reaches every queue of
    the vhost). A retry goes the same way (Celery reuses the delivery's exchange)."""
    name = task_queue(service, config)
    app_for(service, config).send_task(
        task, args=list(args), queue=name, exchange=name, routing_key=name
    )
