"""Celery, one app per service: the service's own background work on the shared broker.

Each service's tasks go to its own queue (``servicemonth.<deployment>.<service>.tasks``).
Tasks are acknowledged late and requeued when a worker dies, so every task must be
idempotent; publishes wait for the broker's confirm. Nothing runs eagerly.
"""

from __future__ import annotations

from celery import Celery

from shared.config import Settings, settings


def task_queue(service: str, config: Settings) -> str:
    return f"servicemonth.{config.deployment}.{service}.tasks"


def make_celery(service: str, config: Settings | None = None) -> Celery:
    import shared.fstransport  # noqa: F401 - registers the sfs:// transport

    config = config or settings()
    app = Celery(f"servicemonth.{service}", set_as_current=False)
    embedded = config.broker_url(service).startswith("sfs://")
    app.conf.update(
        broker_url=config.broker_url(service),
        broker_transport_options=config.broker_options(service),
        broker_connection_retry_on_startup=True,
        task_default_queue=task_queue(service, config),
        task_default_exchange=task_queue(service, config),
        task_default_routing_key=task_queue(service, config),
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
        worker_send_task_events=False,
        timezone="Asia/Shanghai",
        enable_utc=True,
    )
    return app


_APPS: dict[tuple[str, int], Celery] = {}


def app_for(service: str, config: Settings) -> Celery:
    """A client app for ``service`` on ``config``'s broker (to enqueue by task name)."""
    key = (service, id(config))
    if key not in _APPS:
        _APPS[key] = make_celery(service, config)
    return _APPS[key]
