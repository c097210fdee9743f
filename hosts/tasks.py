from auditlog.context import set_actor
from celery import shared_task
from django.contrib.auth import get_user_model

from hosts import engine, services
from hosts.models import Deployment, Tunnel


@shared_task
def tunnel_rotate_keys(tunnel_id: int, actor_id: int | None = None) -> None:
    actor = get_user_model().objects.filter(pk=actor_id).first()
    with set_actor(actor):
        services.tunnel_rotate_keys(tunnel=Tunnel.objects.get(pk=tunnel_id))


@shared_task(bind=True, max_retries=None)
def deployment_run(self, deployment_id: int) -> str:
    """Run one deployment; wait (retry) while another runs on the same host."""
    deployment = Deployment.objects.select_related("host", "rollback_of").get(pk=deployment_id)
    try:
        return services.deployment_run(deployment=deployment)
    except engine.Busy:
        raise self.retry(countdown=1) from None


@shared_task
def hosts_converge() -> list[int]:
    """Queued (coalesced) after a committed change: deploy the hosts whose bundle it altered."""
    return [deployment.pk for deployment in services.hosts_converge()]


@shared_task
def deployments_recover_stale() -> list[str]:
    """Celery beat, every lease: conclude the deployments whose worker fell silent (died, or
    lost the host) from what their hosts report, without waiting for another deployment."""
    return engine.recover_stale()
