"""Convergence with a real Celery worker over Redis and real lab hosts (sshd, Postfix's own
checks): a committed change deploys the hosts whose bundle it alters, by itself and coalesced;
a host that asks for approval, or an infrastructure change, waits for the owner, who applies
exactly the plan shown; each domain says whether its last change is live, in the API and on
its page; a failed automatic deployment is red and leaves the host on its files."""

import hashlib
import time

import pytest
from celery import current_app
from django.urls import reverse

from gateway.models import StatusItem
from hosts.choices import ApplyChanges, DeploymentStatus, DeploymentTrigger
from hosts.models import Deployment, Host, Relay
from hosts.services import deployment_run_here
from tests.deploy_world import relay_host

pytestmark = pytest.mark.django_db(transaction=True)

MAIN_CF = "/etc/postfix/main.cf"
# Refuses the new files' reload, then takes the previous files' as the stand-in always does.
FAILING_SYSTEMCTL = """#!/bin/sh
[ -e /var/lib/mailgate/refused ] && exit 0
touch /var/lib/mailgate/refused
echo 'reload refused' >&2
exit 1
"""


def wait_until(condition, timeout: float = 60, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return found


def automatic(host: Host):
    return Deployment.objects.filter(host=host, trigger=DeploymentTrigger.AUTO)


def settled(host: Host, *statuses: str):
    """The host's automatic deployments once none is pending or running, if any is."""
    done = automatic(host).exclude(status__in=(DeploymentStatus.PENDING, DeploymentStatus.RUNNING))
    if automatic(host).filter(status__in=(DeploymentStatus.PENDING, DeploymentStatus.RUNNING)):
        return None
    return list(done.filter(status__in=statuses)) if statuses else list(done)


def once_applied(deployment: Deployment, what: str) -> Deployment:
    """``deployment`` once it has succeeded (waiting for the worker to apply it)."""
    return wait_until(
        lambda: Deployment.objects.filter(
            pk=deployment.pk, status=DeploymentStatus.SUCCEEDED
        ).first(),
        what=what,
    )


def approve_and_wait(client, deployment: Deployment, what: str) -> Deployment:
    """Approve the plan ``deployment`` holds through the API, then wait until it is applied."""
    approved = client.post(
        reverse("api:deployment-approve", args=[deployment.pk]),
        {"digest": deployment.plan_digest},
        format="json",
    )
    assert approved.status_code == 202, approved.content
    return once_applied(deployment, what)


@pytest.fixture
def converging(settings):
    """Deployed relay hosts, then changes converge; the worker starts with an empty queue."""

    def start(start_worker, *labs, delay: int = 1, **host_fields):
        # Every host first: a new host is an infrastructure change for all of them.
        made = [relay_host(f"relay{number}", lab) for number, lab in enumerate(labs)]
        hosts = Host.objects.filter(pk__in=[host.pk for host in made])
        hosts.update(**host_fields)
        for host in made:
            first = deployment_run_here(host=host, trigger=DeploymentTrigger.CLI)
            assert first.status == DeploymentStatus.SUCCEEDED, first.log
        settings.MAILGATE_CONVERGE = True
        settings.MAILGATE_CONVERGE_DELAY = delay
        current_app.control.purge()
        start_worker(concurrency=2)
        return list(hosts.order_by("name"))

    return start


def domain_api(api, user, family):
    client = api(user)
    url = reverse("api:domain-detail", args=[family.pk])
    return client, url


def test_a_burst_of_50_edits_makes_one_deployment_per_host(
    start_worker, labs, converging, owner, family, api
):
    first_lab, second_lab = labs(), labs()
    hosts = converging(start_worker, first_lab, second_lab, delay=5)
    client, url = domain_api(api, owner, family)
    began = time.monotonic()
    for number in range(50):
        answer = client.patch(url, {"mail_hostname": f"mx{number}.family.example"}, format="json")
        assert answer.status_code == 200, answer.content
    burst = time.monotonic() - began
    assert burst < 5, f"the burst took {burst:.1f} s, longer than the coalescing delay"
    pending = client.get(url).json()
    assert pending["live"] is False and pending["pending_since"] is not None
    assert pending["live_state"] == "pending"
    for host in hosts:
        wait_until(lambda host=host: settled(host, DeploymentStatus.SUCCEEDED), what=str(host))
    time.sleep(7)  # past another coalescing delay: nothing else is queued
    for host, lab in zip(hosts, (first_lab, second_lab), strict=True):
        deployments = list(automatic(host))
        assert len(deployments) == 1, [(d.pk, d.status) for d in deployments]
        assert deployments[0].status == DeploymentStatus.SUCCEEDED, deployments[0].log
        assert b"myhostname = mx49.family.example" in lab.read(MAIN_CF)
    live = client.get(url).json()
    assert live["live"] is True and live["pending_since"] is None, live
    assert live["deployment"] in {d.pk for d in Deployment.objects.filter(trigger="auto")}
    listed = client.get(reverse("api:domain-list")).json()["results"]
    assert [row["live_state"] for row in listed] == ["live"]


def test_a_change_that_leaves_a_hosts_files_alone_deploys_nothing_and_is_live(
    start_worker, labs, converging, owner, family, api
):
    (host,) = converging(start_worker, labs())
    client = api(owner)
    created = client.post(
        reverse("api:mailbox-list"),
        {"domain": family.pk, "local_part": "dave", "password": "a long family passphrase"},
        format="json",
    )
    assert created.status_code == 201, created.content
    url = reverse("api:mailbox-detail", args=[created.json()["id"]])
    wait_until(lambda: client.get(url).json()["live"], what="the mailbox to be live")
    assert not automatic(host).exists()  # a relay host's files hold no mailboxes


def test_a_change_on_an_approval_host_waits_for_the_owner_and_is_applied_after_approval(
    start_worker, labs, converging, owner, alice, family, api, client
):
    lab = labs()
    (host,) = converging(start_worker, lab, apply_changes=ApplyChanges.APPROVAL)
    before = lab.read(MAIN_CF)
    # A relay host's files name only the first domain's mail host, which its owner renames;
    # the manager (alice) sees the change wait and cannot approve it.
    manager = api(alice)
    owner_client, url = domain_api(api, owner, family)
    owner_client.patch(url, {"mail_hostname": "mx.family.example"}, format="json")
    waiting = wait_until(lambda: settled(host, DeploymentStatus.AWAITING), what="a waiting plan")
    (held,) = waiting
    assert lab.read(MAIN_CF) == before  # nothing applied
    seen = manager.get(reverse("api:domain-list")).json()["results"][0]
    assert seen["live_state"] == "waiting" and seen["deployment"] == held.pk
    client.force_login(owner)
    queue = client.get(reverse("hosts:deployment-list")).content.decode()
    assert "Waiting for your approval" in queue and f"/deployments/{held.pk}/" in queue
    detail = client.get(reverse("hosts:deployment-detail", args=[held.pk])).content.decode()
    assert held.plan_digest in detail and "Approve and deploy this plan" in detail
    refused = manager.post(
        reverse("api:deployment-approve", args=[held.pk]), {"digest": held.plan_digest}
    )
    assert refused.status_code == 404  # not the owner: no deployment is there to approve
    approved = client.post(
        reverse("hosts:deployment-approve", args=[held.pk]), {"digest": held.plan_digest}
    )
    assert approved.status_code == 302
    held = once_applied(held, "the approved deployment")
    assert held.approved_by == owner
    applied = lab.read(MAIN_CF)
    assert b"myhostname = mx.family.example" in applied
    # The plan applied is the plan shown: the file on the host is the one the plan recorded.
    shown = held.files.get(path=MAIN_CF)
    assert hashlib.sha256(applied).hexdigest() == shown.after_sha256
    wait_until(lambda: manager.get(url).json()["live"] is True, what="the domain to be live")


def test_approval_applies_only_the_plan_shown(start_worker, labs, converging, owner, family, api):
    lab = labs()
    (host,) = converging(start_worker, lab, apply_changes=ApplyChanges.APPROVAL)
    client, url = domain_api(api, owner, family)
    client.patch(url, {"mail_hostname": "first.family.example"}, format="json")
    (first,) = wait_until(lambda: settled(host, DeploymentStatus.AWAITING), what="a plan")
    client.patch(url, {"mail_hostname": "second.family.example"}, format="json")
    wait_until(
        lambda: automatic(host).filter(status=DeploymentStatus.SUPERSEDED, pk=first.pk).exists(),
        what="the newer plan to replace the first",
    )
    (second,) = automatic(host).filter(status=DeploymentStatus.AWAITING)
    approve = reverse("api:deployment-approve", args=[first.pk])
    stale = client.post(approve, {"digest": first.plan_digest}, format="json")
    assert stale.status_code == 400, stale.content  # replaced: not the plan that waits
    wrong = client.post(
        reverse("api:deployment-approve", args=[second.pk]),
        {"digest": first.plan_digest},
        format="json",
    )
    assert wrong.status_code == 400, wrong.content
    assert b"first.family.example" not in lab.read(MAIN_CF)
    approve_and_wait(client, second, "the approved plan")
    assert b"myhostname = second.family.example" in lab.read(MAIN_CF)


def test_an_infrastructure_change_waits_for_the_owner_even_on_an_automatic_host(
    start_worker, labs, converging, owner, family, api
):
    lab = labs()
    (host,) = converging(start_worker, lab)
    assert host.apply_changes == ApplyChanges.AUTOMATICALLY
    client = api(owner)
    relay = Relay.objects.get()
    changed = client.patch(
        reverse("api:relay-detail", args=[relay.pk]), {"port": 2525}, format="json"
    )
    assert changed.status_code == 200, changed.content
    (held,) = wait_until(lambda: settled(host, DeploymentStatus.AWAITING), what="a plan")
    assert b"[smtp.provider.example]:587" in lab.read(MAIN_CF)
    # A directory change after it does not slip the relay's change through either.
    domain_client, url = domain_api(api, owner, family)
    domain_client.patch(url, {"mail_hostname": "mx.family.example"}, format="json")
    wait_until(
        lambda: automatic(host).filter(pk=held.pk, status="superseded").exists(),
        what="the newer plan",
    )
    (held,) = wait_until(lambda: settled(host, DeploymentStatus.AWAITING), what="a plan")
    assert b"[smtp.provider.example]:587" in lab.read(MAIN_CF)
    approve_and_wait(client, held, "the approved deployment")
    assert b"relayhost = [smtp.provider.example]:2525" in lab.read(MAIN_CF)
    assert Host.objects.get(pk=host.pk).infrastructure_changed_at is None
    # Approved, the host takes directory changes by itself again.
    domain_client.patch(url, {"mail_hostname": "mx2.family.example"}, format="json")
    wait_until(lambda: b"mx2.family.example" in lab.read(MAIN_CF), what="the automatic change")


def test_a_failed_automatic_deployment_is_red_and_leaves_the_previous_files(
    start_worker, labs, converging, owner, family, api, client
):
    lab = labs()
    (host,) = converging(start_worker, lab)
    before = lab.read(MAIN_CF)
    systemctl = lab.root / "private/usr/local/sbin/systemctl"
    systemctl.write_text(FAILING_SYSTEMCTL)
    domain_client, url = domain_api(api, owner, family)
    domain_client.patch(url, {"mail_hostname": "mx.family.example"}, format="json")
    (failed,) = wait_until(lambda: settled(host), what="the automatic deployment")
    assert failed.status == DeploymentStatus.ROLLED_BACK, failed.log
    assert "reload refused" in failed.log and "re-activating" not in failed.log
    assert lab.read(MAIN_CF) == before
    state = domain_client.get(url).json()
    assert state["live_state"] == "failed" and state["live"] is False
    assert state["deployment"] == failed.pk and state["pending_since"] is not None
    # Rolled back, the host runs its previous files: the status page says so (amber; red when
    # a deployment fails before activating), without waiting for Celery beat.
    item = wait_until(
        lambda: StatusItem.objects.filter(key=f"hosts:{host.pk}:deployment").first(),
        what="the status item",
    )
    assert item.colour == "amber" and str(failed) in item.message, item.message
    client.force_login(owner)
    page = client.get(reverse("gateway:domain-list")).content.decode()
    assert 'class="status failed"' in page and f"/deployments/{failed.pk}/" in page
    status_page = client.get(reverse("gateway:status")).content.decode()
    assert str(failed) in status_page
