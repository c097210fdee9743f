"""Workflows on hosts and tunnels."""

import time

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from gateway.bundle import Bundle
from gateway.queueing import after_commit
from hosts import engine, transport, wireguard
from hosts.choices import DeploymentStatus, DeploymentTrigger
from hosts.models import Deployment, Host, Tunnel
from hosts.plan import Plan, make_plan
from hosts.render import render_host
from hosts.validators import validate_host_key


def tunnel_rotate_keys_queue(*, tunnel: Tunnel, user) -> None:
    """New key pairs for the tunnel, made by a worker after commit (the owner's alone)."""
    if not user.is_superuser:
        raise PermissionDenied("Only the owner rotates the tunnel's keys.")
    after_commit("hosts.tasks.tunnel_rotate_keys", tunnel.pk, user.pk)


@transaction.atomic
def tunnel_rotate_keys(*, tunnel: Tunnel) -> None:
    """Give the hub and every spoke a new WireGuard key pair (takes effect on the next deploy)."""
    tunnel = Tunnel.objects.select_for_update().get(pk=tunnel.pk)
    tunnel.hub_private_key = wireguard.generate_private_key()
    tunnel.save(update_fields=["hub_private_key"])
    for peer in tunnel.peers.select_for_update():
        peer.private_key = wireguard.generate_private_key()
        peer.save(update_fields=["private_key"])


def host_scan_key(*, host: Host) -> tuple[str, str]:
    """First contact: the key the host presents and its fingerprint, for the owner to compare
    with the one the host itself shows (``ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub``)."""
    key = transport.scan_host_key(host.ssh_address, host.ssh_port)
    return key, transport.fingerprint(key)


def host_confirm_key(*, host: Host, key: str, fingerprint: str) -> None:
    """Pin ``key`` as the host's key; ``fingerprint`` is what the owner saw and confirmed, so a
    key swapped between showing and confirming is refused."""
    key = " ".join(key.split()[:2])
    try:
        validate_host_key(key)
    except ValidationError as exc:
        raise ValidationError({"ssh_host_key": exc.messages}) from None
    if transport.fingerprint(key) != fingerprint:
        raise ValidationError({"ssh_host_key": "The key does not match the confirmed fingerprint."})
    host.ssh_host_key = key
    host.full_clean()
    host.save(update_fields=["ssh_host_key"])


def deployment_queue(
    *,
    host: Host,
    trigger: DeploymentTrigger,
    user=None,
    rollback_of: Deployment | None = None,
    plan_digest: str = "",
) -> Deployment:
    """Record a pending deployment and hand it to a worker once the transaction commits; with
    ``plan_digest``, the worker deploys only that plan."""
    deployment = Deployment.objects.create(
        host=host,
        trigger=trigger,
        triggered_by=user,
        rollback_of=rollback_of,
        plan_digest=plan_digest,
    )
    after_commit("hosts.tasks.deployment_run", deployment.pk)
    return deployment


def host_deploy(
    *, host: Host, plan_digest: str, trigger: DeploymentTrigger, user=None
) -> Deployment:
    """Queue a deployment of the plan that was shown (``plan_digest``; empty: none was). A plan
    that changed since raises PlanChanged with the new one, before anything is queued; the
    worker checks the digest again against the plan it makes itself."""
    if plan_digest:
        host_plan(host=host).confirm(plan_digest)
    with transaction.atomic():
        return deployment_queue(host=host, trigger=trigger, user=user, plan_digest=plan_digest)


def deploy_all(*, trigger: DeploymentTrigger, user=None) -> list[Deployment]:
    """One deployment per host with a confirmed key; workers run them in parallel."""
    hosts = Host.objects.exclude(ssh_host_key="").order_by("name")
    return [deployment_queue(host=host, trigger=trigger, user=user) for host in hosts]


def deployment_rollback(
    *, deployment: Deployment, trigger: DeploymentTrigger, user=None
) -> Deployment:
    """Deploy an earlier successful deployment's files again, exactly as they were."""
    if deployment.status != DeploymentStatus.SUCCEEDED:
        raise ValidationError("Only a successful deployment can be rolled back to.")
    return deployment_queue(
        host=deployment.host, trigger=trigger, user=user, rollback_of=deployment
    )


def deployment_run_here(
    *, host: Host, trigger: DeploymentTrigger, bundle: Bundle | None = None, wait: float = 600
) -> Deployment:
    """Deploy ``host`` now, in this process rather than a worker (``manage.py deploy``, the lab,
    the benchmarks), ``bundle`` instead of the rendered one if given. While another deployment
    to the host runs, it waits up to ``wait`` seconds, then raises engine.Busy."""
    deployment = Deployment.objects.create(host=host, trigger=trigger)
    deadline = time.monotonic() + wait
    while True:
        try:
            engine.run(deployment, bundle=bundle)
            break
        except engine.Busy:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    deployment.refresh_from_db()
    return deployment


def host_plan(*, host: Host) -> Plan:
    """What deploying ``host`` now would change, read from the host (one connection)."""
    bundle = render_host(host)
    with transport.Session(host) as session:
        return make_plan(host, bundle, session)
