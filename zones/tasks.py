from celery import shared_task

from gateway.models import Domain
from zones import services
from zones.choices import CheckTrigger


@shared_task
def check_all_domains() -> int:
    """Celery beat's periodic check: one task per enabled domain, so one slow zone delays no
    other."""
    ids = list(Domain.objects.filter(enabled=True).values_list("pk", flat=True))
    for domain_id in ids:
        check_domain.delay(domain_id)
    return len(ids)


@shared_task
def check_domain(domain_id: int, trigger: str = CheckTrigger.SCHEDULE) -> int | None:
    domain = Domain.objects.filter(pk=domain_id).first()
    if domain is None:
        return None  # deleted since it was queued
    return services.check_run(domain=domain, trigger=trigger).pk
