from django.db.models import Count

from gateway.models import Alias, Domain, Mailbox
from hosts.models import Deployment, Host, Relay, Tunnel, TunnelPeer


def dashboard_summary(user) -> dict:
    """What the dashboard shows: the user's domains with counts, and for the owner the hosts."""
    summary = {
        "domains": Domain.objects.visible_to(user).annotate(
            mailbox_count=Count("mailboxes", distinct=True),
            alias_count=Count("aliases", distinct=True),
        ),
        "own_mailboxes": Mailbox.objects.filter(owner=user).select_related("domain"),
        "alias_count": Alias.objects.visible_to(user).count(),
    }
    if user.is_superuser:
        summary["hosts"] = Host.objects.select_related("relay")
        summary["relay_count"] = Relay.objects.count()
        summary["tunnels"] = Tunnel.objects.select_related("hub").annotate(
            peer_count=Count("peers")
        )
        summary["recent_deployments"] = Deployment.objects.select_related("host")[:5]
    return summary


def secret_values(host: Host) -> list[str]:
    """Every secret that could show up in a deployment's log for ``host``, for masking."""
    values = [host.cloudflare_api_token, host.mailu_secret_key]
    values += host.ssh_private_key.splitlines()
    if host.relay_id:
        values.append(host.relay.password)
    values += Tunnel.objects.filter(hub=host).values_list("hub_private_key", flat=True)
    values += TunnelPeer.objects.filter(host=host).values_list("private_key", flat=True)
    return [value for value in values if value and "-----" not in value]
