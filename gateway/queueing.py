"""Handing work to a Celery worker from a service, once the transaction commits.

Tasks are thin: an id in, a service call (``<app>/tasks.py``). So services name the task they
queue instead of importing the tasks module, which imports them: the import graph runs one way,
views → services → the worker by name → tasks → services.
"""

from celery import current_app
from django.db import transaction


def after_commit(task: str, *args) -> None:
    """Queue ``task`` (its registered name, ``app.tasks.function``) with ``args`` once the
    current transaction commits; at once outside one."""
    transaction.on_commit(lambda: current_app.send_task(task, args=args))
