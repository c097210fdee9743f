"""How a row's last change stands on the hosts (``gateway.liveness``, answered by
``hosts.selectors.liveness``) from the deployments recorded, and what it costs a list."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from gateway import liveness
from gateway.models import Mailbox
from gateway.services import mailbox_create
from hosts import services
from hosts.choices import DeploymentStatus, DeploymentTrigger
from hosts.models import Deployment, Host

pytestmark = pytest.mark.django_db


@pytest.fixture
def host(db):
    return Host.objects.create(
        name="relay", is_relay=True, ssh_address="192.0.2.1", ssh_host_key="ssh-ed25519 AAAA"
    )


def deployed(host, status, *, at, trigger=DeploymentTrigger.AUTO) -> Deployment:
    return Deployment.objects.create(
        host=host, trigger=trigger, status=status, started_at=at, finished_at=at
    )


def state_of(mailbox) -> liveness.Liveness:
    return liveness.of(Mailbox, [mailbox])[mailbox.pk]


def test_a_change_is_pending_until_a_deployment_after_it_succeeds(family, host):
    carol = Mailbox.objects.get(local_part="carol")
    pending = state_of(carol)
    assert pending.state == "pending" and pending.pending_since is not None
    deployed(host, DeploymentStatus.SUCCEEDED, at=pending.pending_since - timedelta(seconds=1))
    assert state_of(carol).state == "pending"
    later = deployed(host, DeploymentStatus.SUCCEEDED, at=timezone.now())
    assert state_of(carol) == liveness.Liveness("live", None, later.pk)


def test_a_host_found_unchanged_after_the_change_has_it(family, host):
    carol = Mailbox.objects.get(local_part="carol")
    Host.objects.filter(pk=host.pk).update(converged_at=timezone.now())
    assert state_of(carol) == liveness.Liveness("live")


def test_a_failed_or_waiting_deployment_after_the_change_says_so(family, host):
    carol = Mailbox.objects.get(local_part="carol")
    waiting = deployed(host, DeploymentStatus.AWAITING, at=timezone.now())
    assert (state_of(carol).state, state_of(carol).deployment_id) == ("waiting", waiting.pk)
    failed = deployed(host, DeploymentStatus.ROLLED_BACK, at=timezone.now())
    assert (state_of(carol).state, state_of(carol).deployment_id) == ("failed", failed.pk)


def test_the_worst_host_decides(family, host):
    other = Host.objects.create(
        name="second", is_relay=True, ssh_address="192.0.2.2", ssh_host_key="ssh-ed25519 AAAA"
    )
    carol = Mailbox.objects.get(local_part="carol")
    deployed(host, DeploymentStatus.SUCCEEDED, at=timezone.now())
    assert state_of(carol).state == "pending"  # not on the second host yet
    failed = deployed(other, DeploymentStatus.FAILED, at=timezone.now())
    assert state_of(carol) == liveness.Liveness("failed", state_of(carol).pending_since, failed.pk)


def test_the_live_state_costs_the_same_for_any_number_of_rows(owner, family, host, api):
    client = api(owner)
    url = reverse("api:mailbox-list")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    few = queries()
    for number in range(10):
        mailbox_create(domain=family, local_part=f"kid{number}", password="a long passphrase 1")
    assert queries() == few


def test_the_list_page_shows_it_to_a_manager(family, host, alice, client):
    deployed(host, DeploymentStatus.AWAITING, at=timezone.now())
    client.force_login(alice)
    page = client.get(reverse("gateway:mailbox-list")).content.decode()
    assert '<th scope="col">Live</th>' in page
    assert page.count("Waiting for approval") == Mailbox.objects.count()
    assert "/deployments/" not in page  # the deployment pages are the owner's


def test_a_pending_automatic_deployment_takes_in_a_change_unless_it_was_approved(host, owner):
    pending = Deployment.objects.create(host=host, trigger=DeploymentTrigger.AUTO)
    assert services.host_converge(host=host) is None  # it renders when it runs
    Deployment.objects.filter(pk=pending.pk).update(approved_by=owner)
    queued = services.host_converge(host=host)  # the approved plan takes in nothing more
    assert queued and queued.trigger == DeploymentTrigger.AUTO and queued.pk != pending.pk
