from auditlog.context import set_actor
from celery import shared_task
from django.contrib.auth import get_user_model

from hosts import services
from hosts.models import Tunnel


@shared_task
def tunnel_rotate_keys(tunnel_id: int, actor_id: int | None = None) -> None:
    actor = get_user_model().objects.filter(pk=actor_id).first()
    with set_actor(actor):
        services.tunnel_rotate_keys(tunnel=Tunnel.objects.get(pk=tunnel_id))
