from datetime import datetime

from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce

from gateway.liveness import Liveness, State
from gateway.models import Alias, Domain, Mailbox
from hosts.choices import DeploymentStatus
from hosts.models import Deployment, Host, Relay, Tunnel, TunnelPeer

# How a row stands when its hosts disagree: the worst of them.
LIVENESS_ORDER = (State.FAILED, State.WAITING, State.PENDING, State.LIVE)
OUTCOMES = {
    DeploymentStatus.FAILED: State.FAILED,
    DeploymentStatus.ROLLED_BACK: State.FAILED,
    DeploymentStatus.AWAITING: State.WAITING,
}

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


def liveness(changed: dict[int, datetime | None]) -> dict[int, Liveness]:
    """``gateway.liveness``'s provider. A change is live on a host once the host has every
    change up to a moment after it: a deployment that rendered after it succeeded, or Mailgate
    found the host's bundle unchanged since. Else the host's latest deployment that rendered
    after it says whether it failed or waits for approval. Three queries for any rows."""
    hosts = dict(Host.objects.exclude(ssh_host_key="").values_list("pk", "converged_at"))
    if not hosts:
        return {pk: Liveness(State.PENDING, when) for pk, when in changed.items()}
    through = _live_through(hosts)
    since = min((when for when in changed.values() if when), default=None)
    recent = (
        list(
            Deployment.objects.filter(host__in=hosts, started_at__gte=since)
            .exclude(status__in=Deployment.IN_PROGRESS)
            .order_by("started_at")
            .values_list("pk", "host_id", "status", "started_at")
        )
        if since
        else []
    )
    return {pk: _row_liveness(when, through, recent) for pk, when in changed.items()}


def _live_through(hosts: dict[int, datetime | None]) -> dict[int, datetime | None]:
    """By host: the moment up to which every change is on it (a rollback's: the moment of
    the deployment whose files it brought back)."""
    # The latest successful deployment of each host, in one query on every database (not
    # DISTINCT ON, which only PostgreSQL has: the embedded default is SQLite).
    latest = Deployment.objects.filter(
        host=OuterRef("pk"), status=DeploymentStatus.SUCCEEDED
    ).order_by("-finished_at", "-pk")
    deployed = {
        host_id: rolled_back_to or started
        for host_id, started, rolled_back_to in Host.objects.filter(pk__in=hosts)
        .annotate(
            started=Subquery(latest.values("started_at")[:1]),
            rolled_back_to=Subquery(latest.values("rollback_of__started_at")[:1]),
        )
        .values_list("pk", "started", "rolled_back_to")
    }
    return {
        pk: max(filter(None, (deployed.get(pk), converged)), default=None)
        for pk, converged in hosts.items()
    }


def _row_liveness(when, through: dict, recent: list) -> Liveness:
    on_hosts = [_on_host(when, pk, moment, recent) for pk, moment in through.items()]
    state, deployment = min(on_hosts, key=lambda s: (LIVENESS_ORDER.index(s[0]), -(s[1] or 0)))
    return Liveness(state, None if state == State.LIVE else when, deployment)


def _on_host(when, host_id: int, through, recent: list) -> tuple[str, int | None]:
    """How a change made at ``when`` stands on one host, and the deployment that says so."""
    after = [row for row in recent if row[1] == host_id and when and row[3] >= when]
    if through and (when is None or through >= when):
        succeeded = (pk for pk, _, status, _ in after if status == DeploymentStatus.SUCCEEDED)
        return State.LIVE, next(succeeded, None)
    if after:
        return OUTCOMES.get(after[-1][2], State.PENDING), after[-1][0]
    return State.PENDING, None
