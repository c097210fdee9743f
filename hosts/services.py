"""Workflows on hosts and tunnels."""

import time
from datetime import datetime

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from gateway.bundle import Bundle, RenderError
from gateway.queueing import after_commit, after_commit_coalesced
from gateway.services import app_passwords_mark_used, mailbox_usage_store
from hosts import engine, transport, usage, wireguard
from hosts.choices import DeploymentStatus, DeploymentTrigger, FileChange
from hosts.models import Deployment, Host, Tunnel
from hosts.plan import Plan, RemovalsUnconfirmed, last_deployed, make_plan
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
    removals_confirmed_by=None,
) -> Deployment:
    """Record a pending deployment and hand it to a worker once the transaction commits; with
    ``plan_digest``, the worker deploys only that plan (and the removals that
    ``removals_confirmed_by`` confirmed in it)."""
    deployment = Deployment.objects.create(
        host=host,
        trigger=trigger,
        triggered_by=user,
        rollback_of=rollback_of,
        plan_digest=plan_digest,
        destructive_confirmed_by=removals_confirmed_by,
    )
    after_commit("hosts.tasks.deployment_run", deployment.pk)
    return deployment


def deployments_queue(*, hosts, trigger: DeploymentTrigger, user=None) -> list[Deployment]:
    """Record a pending deployment for each host and hand them to the workers once the
    transaction commits, spread over as many tasks as the worker has processes, each running
    its share at once: a deployment waits on its host, not on the CPU, so every host starts at
    the same time, however many there are."""
    deployments = [
        Deployment.objects.create(host=host, trigger=trigger, triggered_by=user) for host in hosts
    ]
    shares = min(len(deployments), settings.CELERY_WORKER_CONCURRENCY)
    for share in range(shares):
        ids = [deployment.pk for deployment in deployments[share::shares]]
        after_commit("hosts.tasks.deployments_run", ids)
    return deployments


def host_deploy(
    *,
    host: Host,
    plan_digest: str,
    trigger: DeploymentTrigger,
    user=None,
    confirm_destructive: bool = False,
) -> Deployment:
    """Queue a deployment of the plan that was shown (``plan_digest``; empty: none was). A plan
    that changed since raises PlanChanged with the new one, before anything is queued; the
    worker checks the digest again against the plan it makes itself. A plan that takes away
    what the host holds raises RemovalsUnconfirmed unless ``confirm_destructive``, which needs
    the digest: one confirms the removals one saw. Without a digest the worker holds such a
    plan for confirmation (``engine``)."""
    confirmed_by = None
    if confirm_destructive and not plan_digest:
        raise ValidationError("Confirm the removals of the plan you reviewed: give its digest.")
    if plan_digest:
        plan = host_plan(host=host)
        plan.confirm(plan_digest)
        if plan.destructive and not confirm_destructive:
            raise RemovalsUnconfirmed(plan)
        confirmed_by = user if plan.destructive else None
    with transaction.atomic():
        return deployment_queue(
            host=host,
            trigger=trigger,
            user=user,
            plan_digest=plan_digest,
            removals_confirmed_by=confirmed_by,
        )


def deploy_all(*, trigger: DeploymentTrigger, user=None) -> list[Deployment]:
    """One deployment per host with a confirmed key, all running at once."""
    hosts = Host.objects.exclude(ssh_host_key="").order_by("name")
    with transaction.atomic():
        return deployments_queue(hosts=hosts, trigger=trigger, user=user)


@transaction.atomic
def deployment_rollback(
    *, deployment: Deployment, trigger: DeploymentTrigger, user=None
) -> Deployment:
    """Deploy an earlier successful deployment's files again, exactly as they were."""
    if deployment.status != DeploymentStatus.SUCCEEDED:
        raise ValidationError("Only a successful deployment can be rolled back to.")
    return deployment_queue(
        host=deployment.host, trigger=trigger, user=user, rollback_of=deployment
    )


def deployment_run(*, deployment: Deployment, bundle: Bundle | None = None) -> DeploymentStatus:
    """Carry a deployment out (``engine.run``; raises engine.Busy while the host is taken). Once
    a deployment of the rendered models that the owner started or approved succeeds, the
    infrastructure changes it rendered no longer hold automatic deployments back; a failed
    automatic one is on the status page at once."""
    hosts = Host.objects.filter(pk=deployment.host_id)
    # Read before rendering: a change committed after this keeps its mark (see the update).
    marked = hosts.values_list("infrastructure_changed_at", flat=True).get()
    status = engine.run(deployment, bundle=bundle)
    rendered = bundle is None and not deployment.rollback_of_id
    if status == DeploymentStatus.SUCCEEDED and rendered and deployment.by_the_owner:
        hosts.filter(infrastructure_changed_at=marked).update(infrastructure_changed_at=None)
    failed = status in (DeploymentStatus.FAILED, DeploymentStatus.ROLLED_BACK)
    if failed and deployment.trigger == DeploymentTrigger.AUTO:
        after_commit("gateway.tasks.status_refresh", ["hosts"])
    return status


def deployment_approve(
    *, deployment: Deployment, plan_digest: str, user, confirm_destructive: bool = False
) -> Deployment:
    """Apply a plan that waits for approval, exactly the one the owner saw (``plan_digest``):
    the worker deploys it only if the plan it makes itself is still that one. A plan that
    takes away what the host holds needs ``confirm_destructive`` too, and records who gave it."""
    if not user.is_superuser:
        raise PermissionDenied("Only the owner approves a deployment.")
    if plan_digest != deployment.plan_digest:
        raise ValidationError("This is not the plan that waits: review the plan shown now.")
    if deployment.destructive and not confirm_destructive:
        raise ValidationError(
            f"This plan takes away what {deployment.host} holds: "
            f"{', '.join(deployment.destructive)}. Confirm these removals to deploy it."
        )
    confirmed = {"destructive_confirmed_by": user} if deployment.destructive else {}
    with transaction.atomic():
        if not deployment.transition(DeploymentStatus.PENDING, approved_by=user, **confirmed):
            raise ValidationError("Only a plan that waits for approval can be approved.")
        after_commit("hosts.tasks.deployment_run", deployment.pk)
    return deployment


def change_committed(*, infrastructure: bool) -> None:
    """A change the change log recorded, inside its transaction: once it commits, every host
    whose bundle it alters is deployed (``hosts_converge``, coalesced). An infrastructure
    change marks every host in the same transaction, so no automatic deployment that could
    have rendered it goes out without the owner."""
    if infrastructure:
        Host.objects.update(infrastructure_changed_at=timezone.now())
    if settings.MAILGATE_CONVERGE:
        after_commit_coalesced("hosts.tasks.hosts_converge", delay=settings.MAILGATE_CONVERGE_DELAY)


def mailbox_usage_refresh() -> int:
    """Read the storage each mailbox uses from every mail server with a confirmed key
    (``hosts.usage``) and store it; returns how many mailboxes were counted. A server that
    cannot be reached keeps its mailboxes' last count (and when it was read)."""
    counts: dict[str, int] = {}
    used: dict[usage.DeviceRef, datetime] = {}
    for host in Host.objects.filter(is_mailserver=True).exclude(ssh_host_key=""):
        last_use, parse_last_use = usage.LAST_USE[host.mail_backend]
        try:
            with transport.Session(host) as session:
                result = session.run(usage.COMMANDS[host.mail_backend])
                devices = session.run(last_use)
        except transport.TransportError:
            continue
        if result.ok:
            counts.update(usage.PARSERS[host.mail_backend](result.stdout))
        if devices.ok:
            for device, moment in parse_last_use(devices.stdout).items():
                used[device] = max(moment, used.get(device, moment))  # two servers: the newer
    app_passwords_mark_used(used=used)
    return mailbox_usage_store(counts=counts)


def hosts_converge() -> list[Deployment]:
    """Queue an automatic deployment of every host with a confirmed key whose bundle differs
    from what it last received; returns them."""
    hosts = Host.objects.exclude(ssh_host_key="").order_by("name")
    return [deployment for host in hosts if (deployment := host_converge(host=host))]


def host_converge(*, host: Host) -> Deployment | None:
    """Deploy ``host`` if its bundle changed, unless a deployment that will carry the change is
    already there: a pending automatic one not yet approved (it renders when it runs) or a plan
    that waits with exactly these files. A host that has them all already has no plan left to
    wait for. A bundle that cannot be rendered is deployed too: the deployment fails with the
    reason, on the status page."""
    moment = timezone.now()
    try:
        files = _files(render_host(host))
    except RenderError:
        files = None
    if files == _deployed_files(last_deployed(host).values()):
        Host.objects.filter(pk=host.pk).update(converged_at=moment)
        Deployment.objects.supersede_waiting(host)
        return None
    with transaction.atomic():
        Host.objects.select_for_update().get(pk=host.pk)  # one converging worker per host
        waiting = Deployment.objects.filter(host=host, trigger=DeploymentTrigger.AUTO)
        # An approved plan takes in nothing more: it deploys only the plan that was shown.
        if waiting.filter(status=DeploymentStatus.PENDING, approved_by=None).exists():
            return None
        held = waiting.filter(status=DeploymentStatus.AWAITING).first()
        if held and files == _deployed_files(held.files.all()):
            return None
        return deployment_queue(host=host, trigger=DeploymentTrigger.AUTO)


def _files(bundle: Bundle) -> dict[str, str]:
    return {file.path: file.sha256 for file in bundle.files}


def _deployed_files(rows) -> dict[str, str]:
    return {row.path: row.after_sha256 for row in rows if row.change != FileChange.DELETED}


def deployment_run_here(
    *,
    host: Host,
    trigger: DeploymentTrigger,
    bundle: Bundle | None = None,
    wait: float = 600,
    plan: Plan | None = None,
    removals_confirmed_by=None,
) -> Deployment:
    """Deploy ``host`` now, in this process rather than a worker (``manage.py deploy``, the lab,
    the benchmarks), ``bundle`` instead of the rendered one if given; with ``plan``, only that
    plan, its removals confirmed by ``removals_confirmed_by`` (otherwise a plan with removals
    waits for confirmation). While another deployment to the host runs, it waits up to
    ``wait`` seconds, then raises engine.Busy."""
    deployment = Deployment.objects.create(
        host=host,
        trigger=trigger,
        plan_digest=plan.digest if plan else "",
        destructive_confirmed_by=removals_confirmed_by if plan and plan.destructive else None,
    )
    deadline = time.monotonic() + wait
    while True:
        try:
            deployment_run(deployment=deployment, bundle=bundle)
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
