from celery import shared_task

from keys import services


@shared_task
def certifications_check() -> int:
    """Refresh contact keys' validity and the certification alerts; returns how many alerts."""
    return len(services.certifications_check())
