from celery import shared_task

from certs import services
from certs.choices import Trigger
from certs.models import Certificate


@shared_task
def certificates_renew(trigger: str = Trigger.SCHEDULE) -> int:
    """Celery beat's run: renew every certificate that is due; returns how many were tried."""
    return len(services.certificates_renew(trigger=trigger))


@shared_task
def certificate_renew(certificate_id: int, trigger: str) -> str:
    """Renew one certificate now (``services.certificate_renewal_request``); a certificate
    removed since it was asked for is left alone. Returns the outcome."""
    certificate = Certificate.objects.filter(pk=certificate_id).first()
    if certificate is None:
        return "gone"
    return services.certificate_issue(certificate=certificate, trigger=trigger).outcome
