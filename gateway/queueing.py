"""Handing work to a Celery worker from a service, once the transaction commits.

Tasks are thin: an id in, a service call (``<app>/tasks.py``). So services name the task they
queue instead of importing the tasks module, which imports them: the import graph runs one way,
views → services → the worker by name → tasks → services.
"""

from celery import current_app
from django.core.cache import cache
from django.db import transaction


def after_commit(task: str, *args) -> None:
    """Queue ``task`` (its registered name, ``app.tasks.function``) with ``args`` once the
    current transaction commits; at once outside one."""
    transaction.on_commit(lambda: current_app.send_task(task, args=args))


def after_commit_coalesced(task: str, *, delay: int) -> None:
    """Queue ``task`` (without arguments) to run ``delay`` seconds after the current transaction
    commits, unless a run is already queued within that time: a burst of commits runs it once.
    Every commit is still followed by a run that starts after it, since the mark in the shared
    cache lasts exactly as long as the countdown of the run it stands for."""

    def queue():
        if cache.add(f"gateway:queued:{task}", True, timeout=delay):
            current_app.send_task(task, countdown=delay)

    transaction.on_commit(queue)
