"""Who reaches which keys, through the pages and the API: trust anchors, contact keys and alerts
are the owner's alone; a mailbox's keys belong to its domain's managers and to the mailbox's
owner, and to nobody else."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from keys.models import CertificationAlert, ContactKey, OpenPGPKey, TrustAnchor
from tests.helpers import page_url
from tests.keys_world import keyring_fixture  # noqa: F401 (fixture)
from tests.named import (  # noqa: F401 (fixtures, written once for this module)
    alice_once,
    bob_once,
    carol_once,
    family_once,
    other_once,
)

ARMORED = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZ...\n-----END PGP PUBLIC KEY BLOCK-----\n"


@pytest.fixture
def rows(family, other):
    anchor = TrustAnchor.objects.create(name="ProtonCA", fingerprint="A" * 40, public_key=ARMORED)
    contact = ContactKey.objects.create(
        label="Joe", fingerprint="B" * 40, public_key=ARMORED, user_ids=["joe@proton.example"]
    )
    alert = CertificationAlert.objects.create(
        contact_key=contact,
        trust_anchor=anchor,
        user_id="joe@proton.example",
        kind="expired",
        expires_at=timezone.now() - timedelta(days=1),
        checked_at=timezone.now(),
    )
    carol_key = OpenPGPKey.objects.create(
        mailbox=family.mailboxes.get(local_part="carol"), fingerprint="C" * 40, public_key=ARMORED
    )
    alice_key = OpenPGPKey.objects.create(
        mailbox=family.mailboxes.get(local_part="alice"), fingerprint="D" * 40, public_key=ARMORED
    )
    return {
        "trustanchor": anchor,
        "contactkey": contact,
        "alert": alert,
        "carol_key": carol_key,
        "alice_key": alice_key,
    }


OWNER_ONLY = {
    # kind: (model, API route, a valid change, a label shown on the list page)
    "trustanchor": (TrustAnchor, "trust-anchors", {"name": "Hacked"}, "A" * 40),
    "contactkey": (ContactKey, "contact-keys", {"label": "Hacked"}, "B" * 40),
}


@pytest.mark.parametrize("person", ["alice", "bob", "carol"])
@pytest.mark.parametrize("kind", OWNER_ONLY)
def test_it_keeps_trust_anchors_and_contacts_from_everyone_but_the_owner(
    request, client, api, rows, kind, person
):
    user = request.getfixturevalue(person)
    model, route, change, label = OWNER_ONLY[kind]
    obj = rows[kind]
    client.force_login(user)
    assert label not in client.get(page_url(OWNER_ONLY[kind][0], "list")).content.decode()
    assert client.get(page_url(OWNER_ONLY[kind][0], "update", obj.pk)).status_code == 404
    assert client.post(page_url(OWNER_ONLY[kind][0], "update", obj.pk), change).status_code == 404
    assert client.post(page_url(OWNER_ONLY[kind][0], "delete", obj.pk)).status_code == 404
    client_api = api(user)
    assert client_api.get(f"/api/{route}/").json()["results"] == []
    for verb in ("get", "patch", "put", "delete"):
        response = getattr(client_api, verb)(f"/api/{route}/{obj.pk}/", change, format="json")
        assert response.status_code == 404, verb
    assert model.objects.filter(pk=obj.pk).exclude(**change).exists()


@pytest.mark.parametrize("person", ["alice", "bob", "carol"])
def test_it_keeps_the_alerts_from_everyone_but_the_owner(request, client, api, rows, person):
    user = request.getfixturevalue(person)
    client.force_login(user)
    assert (
        "joe@proton.example"
        not in client.get(reverse("keys:certification-alerts")).content.decode()
    )
    assert api(user).get("/api/certification-alerts/").json()["results"] == []
    assert api(user).get(f"/api/certification-alerts/{rows['alert'].pk}/").status_code == 404


def test_it_lets_the_owner_manage_anchors_contacts_and_alerts(client, api, owner, rows, keyring):
    client.force_login(owner)
    for kind, (_, route, change, label) in OWNER_ONLY.items():
        assert label in client.get(page_url(OWNER_ONLY[kind][0], "list")).content.decode()
        assert api(owner).patch(f"/api/{route}/{rows[kind].pk}/", change).status_code == 200
    assert "joe@proton.example" in client.get(reverse("keys:certification-alerts")).content.decode()
    contact = rows["contactkey"]
    assert client.post(reverse("keys:contactkey-delete", args=[contact.pk])).status_code == 302
    assert not ContactKey.objects.exists()


def test_it_lets_a_mailbox_owner_manage_only_their_own_key(client, api, carol, rows, keyring):
    mine, theirs = rows["carol_key"], rows["alice_key"]
    client.force_login(carol)
    listing = client.get(reverse("keys:openpgpkey-list")).content.decode()
    assert mine.fingerprint in listing and theirs.fingerprint not in listing
    assert client.get(reverse("keys:openpgpkey-detail", args=[theirs.pk])).status_code == 404
    assert client.get(reverse("keys:openpgpkey-update", args=[theirs.pk])).status_code == 404
    assert (
        api(carol).patch(f"/api/openpgp-keys/{theirs.pk}/", {"published": False}).status_code == 404
    )
    response = client.post(reverse("keys:openpgpkey-update", args=[mine.pk]), {"published": ""})
    assert response.status_code == 302
    assert not OpenPGPKey.objects.get(pk=mine.pk).published
    assert api(carol).delete(f"/api/openpgp-keys/{mine.pk}/").status_code == 204
    assert OpenPGPKey.objects.filter(pk=theirs.pk, published=True).exists()


def test_it_hides_a_domains_keys_from_another_manager(client, api, bob, rows):
    client.force_login(bob)
    for key in (rows["carol_key"], rows["alice_key"]):
        assert client.get(reverse("keys:openpgpkey-detail", args=[key.pk])).status_code == 404
        assert api(bob).get(f"/api/openpgp-keys/{key.pk}/").status_code == 404
    assert api(bob).get("/api/openpgp-keys/").json()["results"] == []


def test_it_lets_the_manager_reach_every_key_of_their_domain(client, api, alice, rows):
    client.force_login(alice)
    for key in (rows["carol_key"], rows["alice_key"]):
        assert client.get(reverse("keys:openpgpkey-detail", args=[key.pk])).status_code == 200
    ids = {row["id"] for row in api(alice).get("/api/openpgp-keys/").json()["results"]}
    assert ids == {rows["carol_key"].pk, rows["alice_key"].pk}
