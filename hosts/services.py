"""Workflows on hosts and tunnels."""

from django.db import transaction

from hosts import wireguard
from hosts.models import Tunnel


@transaction.atomic
def tunnel_rotate_keys(*, tunnel: Tunnel) -> None:
    """Give the hub and every spoke a new WireGuard key pair (takes effect on the next deploy)."""
    tunnel = Tunnel.objects.select_for_update().get(pk=tunnel.pk)
    tunnel.hub_private_key = wireguard.generate_private_key()
    tunnel.save(update_fields=["hub_private_key"])
    for peer in tunnel.peers.select_for_update():
        peer.private_key = wireguard.generate_private_key()
        peer.save(update_fields=["private_key"])
