from celery import shared_task

from certs import services


@shared_task
def certificates_renew() -> int:
    """Celery beat's run: renew every certificate that is due; returns how many were tried."""
    return len(services.certificates_renew())
