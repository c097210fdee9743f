"""The certificates' pages and API (owner only): every certificate with its state, one
certificate's history and chain, and "Renew now", run by a real worker against Pebble."""

import time

import pytest
from celery import current_app
from django.urls import reverse

from certs import services
from certs.choices import Outcome, Trigger
from certs.models import Certificate, Issuance
from tests.certs_world import (  # noqa: F401 (fixtures)
    issue_by_hand,
    pebble_fixture,
    world_fixture,
    zone_fixture,
)


@pytest.fixture
def certificates(world):
    """The two certificates the reference setup (docs/reference-setups.md) needs: the mail server's
    and the gateway's."""
    mail, gateway = sorted(services.certificates_sync(), key=lambda c: c.purpose != "mail")
    return mail, gateway


def test_the_page_shows_each_certificate_with_its_state(certificates, client, owner):
    mail, gateway = certificates
    issued = issue_by_hand(mail, days_left=60)
    Issuance.objects.create(
        certificate=gateway, outcome=Outcome.FAILED, names=gateway.names, message="no push"
    )
    client.force_login(owner)
    page = client.get(reverse("certs:certificate-list")).content.decode()
    assert reverse("certs:certificate-detail", args=[mail.pk]) in page
    assert "Valid: issued by CN=mail.family.example" in page
    assert "Never issued: no push." in page and "colour red" in page
    assert "openpgpkey.family.example" in page  # every name it covers
    assert "Not issued yet" not in page
    detail = client.get(reverse("certs:certificate-detail", args=[mail.pk])).content.decode()
    assert issued.serial in detail and "By hand" not in detail and "Renewal (Celery beat)" in detail
    assert "PRIVATE KEY" not in detail and "Download the chain" in detail
    chain = client.get(reverse("certs:certificate-chain", args=[mail.pk]))
    assert chain.content.decode() == issued.fullchain and b"PRIVATE" not in chain.content
    assert chain["Content-Disposition"] == 'attachment; filename="mail.family.example.pem"'
    never = client.get(reverse("certs:certificate-chain", args=[gateway.pk]), follow=True)
    assert "has not been issued yet" in never.content.decode()


def test_the_page_says_what_the_setup_needs_that_has_no_certificate_yet(world, client, owner):
    client.force_login(owner)
    page = client.get(reverse("certs:certificate-list")).content.decode()
    assert "the setup now needs 2 more" in page
    assert "<code>mail.family.example</code> (mail.family.example)" in page
    assert not Certificate.objects.exists()  # looking changes nothing


def test_expired_and_due_certificates_stand_out(certificates, client, owner):
    mail, gateway = certificates
    issue_by_hand(mail, days_left=-1)
    issue_by_hand(gateway, days_left=10)
    client.force_login(owner)
    page = client.get(reverse("certs:certificate-list")).content.decode()
    assert "Expired: issued by CN=mail.family.example" in page
    assert "Due for renewal: issued by CN=" in page and "colour amber" in page


def test_only_the_owner_sees_or_renews_certificates(certificates, client, alice, api, owner):
    mail, _ = certificates
    issue_by_hand(mail, days_left=60)
    client.force_login(alice)  # manages family.example, but certificates are infrastructure
    for url in (
        reverse("certs:certificate-list"),
        reverse("certs:certificate-detail", args=[mail.pk]),
        reverse("certs:certificate-chain", args=[mail.pk]),
    ):
        assert client.get(url).status_code == 302  # to the login page
    assert client.post(reverse("certs:certificate-renew", args=[mail.pk])).status_code == 302
    assert client.post(reverse("certs:certificates-renew")).status_code == 302
    assert not Certificate.objects.get(pk=mail.pk).force_renewal
    as_alice = api(alice)
    assert as_alice.get("/api/certificates/").json()["results"] == []
    assert as_alice.get(f"/api/certificates/{mail.pk}/").status_code == 404
    assert as_alice.post(f"/api/certificates/{mail.pk}/renew/").status_code == 404
    assert as_alice.post("/api/certificates/renew-due/").status_code == 403
    assert not Certificate.objects.get(pk=mail.pk).force_renewal


def test_the_api_lists_certificates_and_never_a_key(certificates, api, owner):
    mail, _ = certificates
    issued = issue_by_hand(mail, days_left=60)
    as_owner = api(owner)
    listed = as_owner.get("/api/certificates/").json()["results"]
    by_purpose = {row["purpose"]: row for row in listed}
    row = by_purpose["mail"]
    assert row["host_name"] == "home" and row["name"] == "mail.family.example"
    assert row["state"]["colour"] == "green" and row["state"]["message"].startswith("Valid")
    assert row["current"]["serial"] == issued.serial and row["latest"]["id"] == issued.pk
    assert by_purpose["gateway"]["current"] is None
    assert by_purpose["gateway"]["state"]["colour"] == "amber"
    detail = as_owner.get(f"/api/certificates/{mail.pk}/").json()
    assert detail["current"]["fullchain"] == issued.fullchain
    assert [attempt["id"] for attempt in detail["history"]] == [issued.pk]
    text = str(listed) + str(detail)
    assert "PRIVATE KEY" not in text and "private_key" not in text


def wait_for(predicate, *, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("the worker did not finish in time")


@pytest.mark.django_db(transaction=True)
def test_renew_now_runs_in_the_worker_from_the_page_and_the_api(
    world, pebble, start_worker, client, owner, api
):
    [first, _] = services.certificates_renew()
    certificate = first.certificate
    current_app.control.purge()  # nothing left over from an earlier, interrupted run
    start_worker(
        MAILGATE_ACME_DIRECTORY=pebble.directory, MAILGATE_ACME_CA_FILE=str(pebble.ca_file)
    )
    client.force_login(owner)
    answer = client.post(reverse("certs:certificate-renew", args=[certificate.pk]), follow=True)
    assert "Renewal of mail.family.example queued" in answer.content.decode()
    by_hand = wait_for(
        lambda: Issuance.objects.filter(certificate=certificate, trigger=Trigger.UI).first()
    )
    by_hand = wait_for(lambda: Issuance.objects.filter(pk=by_hand.pk, finished_at__isnull=False))
    [by_hand] = by_hand
    assert by_hand.outcome == Outcome.ISSUED, by_hand.message
    assert by_hand.serial != first.serial
    assert not Certificate.objects.get(pk=certificate.pk).force_renewal
    response = api(owner).post(f"/api/certificates/{certificate.pk}/renew/")
    assert response.status_code == 202 and response.json()["force_renewal"] is True
    wait_for(
        lambda: Issuance.objects.filter(
            certificate=certificate, trigger=Trigger.API, outcome=Outcome.ISSUED
        ).exists()
    )
    assert api(owner).post("/api/certificates/renew-due/").status_code == 202
    assert client.post(reverse("certs:certificates-renew")).status_code == 302
