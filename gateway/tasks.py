from celery import shared_task

from gateway import services


@shared_task
def status_refresh() -> int:
    """Run the status page's probes (Celery beat, "Check now", the API); returns how many items
    changed colour."""
    return len(services.status_refresh())
