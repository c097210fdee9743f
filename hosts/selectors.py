from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce

from gateway.models import Alias, Domain, Mailbox
from hosts.models import Deployment, Host, Relay, Tunnel, TunnelPeer

DASHBOARD_DOMAINS = 20


def dashboard_summary(user) -> dict:
    """What the dashboard shows: the user's first domains with counts (each count a subquery,
    so a thousand domains cost no more than twenty), and for the owner the hosts."""
    domains = Domain.objects.visible_to(user)
    summary = {
        "domains": domains.annotate(mailbox_count=_count(Mailbox), alias_count=_count(Alias))[
            :DASHBOARD_DOMAINS
        ],
        "domain_count": domains.count(),
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


def _count(model) -> Subquery:
    rows = model.objects.filter(domain=OuterRef("pk")).order_by().values("domain")
    return Coalesce(Subquery(rows.annotate(n=Count("*")).values("n")), 0)


def secret_values(host: Host) -> list[str]:
    """Every secret that could show up in a deployment's log for ``host``, for masking."""
    values = [host.cloudflare_api_token, host.mailu_secret_key]
    values += host.ssh_private_key.splitlines()
    if host.relay_id:
        values.append(host.relay.password)
    values += Tunnel.objects.filter(hub=host).values_list("hub_private_key", flat=True)
    values += TunnelPeer.objects.filter(host=host).values_list("private_key", flat=True)
    return [value for value in values if value and "-----" not in value]
