from concurrent.futures import ThreadPoolExecutor

from auditlog.context import set_actor
from celery import shared_task
from django.contrib.auth import get_user_model
from django.db import connection

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
    try:
        return _run(deployment_id)
    except engine.Busy:
        raise self.retry(countdown=1) from None


@shared_task
def deployments_run(deployment_ids: list[int]) -> list[str]:
    """Run several deployments at once, one thread each (``services.deployments_queue``); one
    whose host is taken goes back to the queue on its own."""
    with ThreadPoolExecutor(max_workers=len(deployment_ids) or 1) as pool:
        return list(pool.map(_run_in_thread, deployment_ids))


def _run(deployment_id: int) -> str:
    deployment = Deployment.objects.select_related("host", "rollback_of").get(pk=deployment_id)
    return services.deployment_run(deployment=deployment)


def _run_in_thread(deployment_id: int) -> str:
    try:
        return _run(deployment_id)
    except engine.Busy:
        deployment_run.apply_async((deployment_id,), countdown=1)
        return "queued: the host is busy"
    finally:
        connection.close()  # each thread's own


@shared_task
def hosts_converge() -> list[int]:
    """Queued (coalesced) after a committed change: deploy the hosts whose bundle it altered."""
    return [deployment.pk for deployment in services.hosts_converge()]


@shared_task
def deployments_recover_stale() -> list[str]:
    """Celery beat, every lease: conclude the deployments whose worker fell silent (died, or
    lost the host) from what their hosts report, without waiting for another deployment."""
    return engine.recover_stale()


@shared_task
def mailbox_usage_refresh() -> int:
    """Celery beat: read how much storage each mailbox uses from the mail servers."""
    return services.mailbox_usage_refresh()
