from celery import shared_task

from gateway import services


@shared_task
def status_refresh(probes: list[str] | None = None) -> int:
    """Run the status page's probes (Celery beat, "Check now", the API), or only ``probes``;
    returns how many items changed colour."""
    return len(services.status_refresh(probes=probes))
