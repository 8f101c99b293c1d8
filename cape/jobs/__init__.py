"""Background jobs on Huey: SQLite storage by default, Redis at scale, immediate in tests.

Tasks are enqueued after the surrounding transaction commits (``enqueue_after_commit``), so a
rolled-back change never starts a job, and each task runs in its own unit of work (``job``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey
from huey.consumer import Consumer
from sqlalchemy.orm import Session, sessionmaker

from cape import events
from cape.config import Settings
from cape.db import create_db_engine, create_session_factory, unit_of_work


def _make_huey(settings: Settings) -> Huey:
    name = settings.jobs_queue
    if settings.jobs_backend == "redis":
        # Never a silent fallback: a web process and a worker that disagree on the storage would
        # each wait on a queue the other never fills.
        if not settings.redis_url:
            raise ValueError("CAPE_REDIS_URL is required with CAPE_JOBS_BACKEND=redis")
        return RedisHuey(name, url=settings.redis_url)
    if settings.jobs_backend == "immediate":
        return MemoryHuey(name, immediate=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(name, filename=str(settings.data_dir / "jobs.db"))


# The queue's storage is chosen when the app or worker starts (``configure``), from the settings
# it was started with, command-line overrides included; until then tasks queue in memory.
huey: Huey = MemoryHuey("cape", immediate=Settings().jobs_backend == "immediate")

_runtime: dict[str, Any] = {}


def configure(session_factory: sessionmaker[Session], settings: Settings | None = None) -> None:
    """Tell tasks which database (and settings) to use (called by the app and by the worker)."""
    _runtime["session_factory"] = session_factory
    if settings is not None:
        _runtime["settings"] = settings
        _use_storage(settings)


def _use_storage(settings: Settings) -> None:
    if settings.jobs_backend == "immediate":
        huey.immediate = True
        return
    huey.immediate = False
    huey.storage = _make_huey(settings).storage


def _session_factory() -> sessionmaker[Session]:
    if "session_factory" not in _runtime:
        configure(create_session_factory(create_db_engine(runtime_settings())))
    return _runtime["session_factory"]


def session_factory() -> sessionmaker[Session]:
    """The session factory tasks use, for tasks that manage more than one unit of work."""
    return _session_factory()


def runtime_settings() -> Settings:
    """The settings the app or worker was started with."""
    if "settings" not in _runtime:
        _runtime["settings"] = Settings()
    return _runtime["settings"]


def job(**task_options: Any) -> Callable:
    """Declare a task whose first argument is a session committed when the task returns."""

    def decorator(fn: Callable[..., Any]):
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with unit_of_work(_session_factory()) as session:
                return fn(session, *args, **kwargs)

        return huey.task(**task_options)(run)

    return decorator


def job_session(*, read_only: bool = False):
    """A unit of work for tasks that must not hold a transaction open (e.g. across an HTTP call);
    ``read_only`` for work that only looks (on SQLite it then never waits for a writer)."""
    return unit_of_work(_session_factory(), read_only=read_only)


def enqueue_after_commit(session: Session, task: Callable, *args: Any, **kwargs: Any) -> None:
    """Queue ``task(*args, **kwargs)`` once this session's transaction commits."""
    events.on_commit(session, lambda: task(*args, **kwargs))


# Modules that define tasks; imported by the web app, the worker and in-process consumers. Every
# one is listed here: a worker imports nothing else, and a task it has not imported is dropped.
TASK_MODULES: list[str] = [
    "cape.actions.tasks",
    "cape.auth.tasks",
    "cape.channels.email.tasks",
    "cape.channels.integrations.tasks",
]


def load_tasks() -> None:
    import importlib

    for module in TASK_MODULES:
        importlib.import_module(module)


class _InProcessConsumer(Consumer):
    """A consumer living beside the web server: the server, not Huey, owns the process signals."""

    def _set_signal_handlers(self) -> None:
        return None


def start_in_process_consumer(threads: int = 2) -> Consumer | None:
    """Run jobs inside the web process (the embedded default); returns the consumer to stop."""
    load_tasks()
    if huey.immediate:  # tasks already run inline where they are enqueued
        return None
    consumer = _InProcessConsumer(huey, workers=threads, worker_type="thread", check_worker_health=False)
    consumer.start()
    return consumer
