from auditlog.context import set_actor
from celery import shared_task
from django.contrib.auth import get_user_model

from hosts import engine, remote, services
from hosts.choices import DeploymentStatus
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
        status = engine.run(deployment)
    except engine.Busy:
        raise self.retry(countdown=1) from None
    if status == DeploymentStatus.RUNNING:
        deployment_recover.apply_async((deployment_id,), countdown=remote.COMMIT_WAIT + 5)
    return status


@shared_task(bind=True, max_retries=120)
def deployment_recover(self, deployment_id: int) -> str:
    """After a lost connection: ask the host how the transaction ended, until it answers."""
    status = engine.recover(Deployment.objects.select_related("host").get(pk=deployment_id))
    if status == DeploymentStatus.RUNNING:
        raise self.retry(countdown=30)
    return status
