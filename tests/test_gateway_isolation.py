"""Domain isolation: Bob, who manages other.example, can neither list, read, change, delete nor
create anything of Alice's family.example, through the pages or the API. Alice can (positive
control), and a mailbox owner reaches only their own mailbox."""

import pytest
from django.urls import reverse

from gateway.models import Alias, Domain, Mailbox
from keys.models import OpenPGPKey
from tests.helpers import page_url
from tests.named import (  # noqa: F401 (fixtures, written once for this module)
    alice_once,
    bob_once,
    carol_once,
    family_once,
    other_once,
)

ARMORED = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZ...\n-----END PGP PUBLIC KEY BLOCK-----\n"


def family_object(kind: str, family):
    alice = family.mailboxes.get(local_part="alice")
    return {
        "domain": lambda: family,
        "mailbox": lambda: alice,
        "alias": lambda: family.aliases.get(local_part="postmaster"),
        "openpgpkey": lambda: OpenPGPKey.objects.create(
            mailbox=alice, fingerprint="A" * 40, public_key=ARMORED
        ),
    }[kind]()


KINDS = {
    # kind: (model, API route, a change that would be valid for a manager, a label on the page)
    "domain": (Domain, "domains", {"enabled": False}, "family.example"),
    "mailbox": (Mailbox, "mailboxes", {"display_name": "Hacked"}, "alice@family.example"),
    "alias": (Alias, "aliases", {"allowed_as_sender": True}, "postmaster@family.example"),
    "openpgpkey": (OpenPGPKey, "openpgp-keys", {"published": False}, "A" * 40),
}


@pytest.fixture
def both(family, other):
    return family


@pytest.mark.parametrize("kind", KINDS)
def test_it_hides_another_domains_rows_from_the_list_page(client, bob, both, kind):
    family_object(kind, both)
    client.force_login(bob)
    response = client.get(page_url(KINDS[kind][0], "list"))
    assert response.status_code == 200
    assert KINDS[kind][3] not in response.content.decode()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("verb", ["read", "change", "delete"])
def test_it_refuses_another_domains_row_on_the_pages(client, bob, both, kind, verb):
    obj = family_object(kind, both)
    model, _, change, _ = KINDS[kind]
    client.force_login(bob)
    url = {
        "read": page_url(KINDS[kind][0], "update", obj.pk),
        "change": page_url(KINDS[kind][0], "update", obj.pk),
        "delete": page_url(KINDS[kind][0], "delete", obj.pk),
    }[verb]
    response = client.get(url) if verb == "read" else client.post(url, change)
    assert response.status_code == 404
    assert model.objects.filter(pk=obj.pk).exists()
    assert not model.objects.filter(pk=obj.pk, **change).exists()


@pytest.mark.parametrize("kind", KINDS)
def test_it_hides_another_domains_rows_from_the_api_list(api, bob, both, kind):
    obj = family_object(kind, both)
    response = api(bob).get(f"/api/{KINDS[kind][1]}/")
    assert response.status_code == 200
    assert obj.pk not in [row["id"] for row in response.json()["results"]]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("verb", ["get", "patch", "put", "delete"])
def test_it_refuses_another_domains_row_in_the_api(api, bob, both, kind, verb):
    obj = family_object(kind, both)
    model, route, change, _ = KINDS[kind]
    client = api(bob)
    url = f"/api/{route}/{obj.pk}/"
    response = getattr(client, verb)(url, change, format="json")
    assert response.status_code == 404
    assert model.objects.filter(pk=obj.pk).exists()
    assert not model.objects.filter(pk=obj.pk, **change).exists()


CREATE_INTO_FAMILY = {
    "mailbox": ("gateway:mailbox-create", "mailboxes", Mailbox, {"local_part": "mallory"}),
    "alias": ("gateway:alias-create", "aliases", Alias, {"local_part": "mallory"}),
}


@pytest.mark.parametrize("kind", CREATE_INTO_FAMILY)
def test_it_refuses_to_create_in_another_domain(client, api, bob, both, kind):
    url_name, route, model, fields = CREATE_INTO_FAMILY[kind]
    data = {
        "domain": both.pk,
        "password": "long enough password",
        "password_again": "long enough password",
        "destinations": "bob@other.example",
        **fields,
    }
    client.force_login(bob)
    response = client.post(reverse(url_name), data)
    assert "domain" in response.context["form"].errors
    data["destinations"] = [data["destinations"]]
    response = api(bob).post(f"/api/{route}/", data, format="json")
    assert response.status_code == 400
    assert "domain" in response.json()["errors"]
    assert not model.objects.filter(local_part="mallory").exists()


def test_it_refuses_to_create_a_key_for_another_domains_mailbox(api, bob, both):
    alice = both.mailboxes.get(local_part="alice")
    response = api(bob).post(
        "/api/openpgp-keys/",
        {"mailbox": alice.pk, "fingerprint": "C" * 40, "public_key": ARMORED},
        format="json",
    )
    assert response.status_code == 400
    assert not OpenPGPKey.objects.exists()


@pytest.mark.parametrize("kind", ["mailbox", "alias", "openpgpkey"])
def test_it_lets_the_manager_change_their_own_domain(client, api, alice, both, kind):
    obj = family_object(kind, both)
    model, route, change, label = KINDS[kind]
    client.force_login(alice)
    assert label in client.get(page_url(KINDS[kind][0], "list")).content.decode()
    assert client.get(page_url(KINDS[kind][0], "update", obj.pk)).status_code == 200
    response = api(alice).patch(f"/api/{route}/{obj.pk}/", change, format="json")
    assert response.status_code == 200, response.json()
    assert model.objects.filter(pk=obj.pk, **change).exists()


def test_it_lets_a_manager_read_but_not_change_their_domain(api, alice, both):
    client = api(alice)
    assert client.get(f"/api/domains/{both.pk}/").status_code == 200
    assert client.patch(f"/api/domains/{both.pk}/", {"enabled": False}).status_code == 403
    assert client.delete(f"/api/domains/{both.pk}/").status_code == 403
    assert client.post("/api/domains/", {"name": "mine.example"}).status_code == 403
    assert Domain.objects.filter(pk=both.pk, enabled=True).exists()


def test_it_shows_a_mailbox_owner_only_their_mailbox(client, api, carol, both):
    carol_box = both.mailboxes.get(local_part="carol")
    alice_box = both.mailboxes.get(local_part="alice")
    ids = [row["id"] for row in api(carol).get("/api/mailboxes/").json()["results"]]
    assert ids == [carol_box.pk]
    client.force_login(carol)
    url = reverse("gateway:mailbox-password", args=[carol_box.pk])
    new = "a brand new password"
    response = client.post(url, {"password": new, "password_again": new})
    assert response.status_code == 302
    carol_box.refresh_from_db()
    assert carol_box.check_password(new)
    other_url = reverse("gateway:mailbox-password", args=[alice_box.pk])
    assert client.post(other_url, {"password": new, "password_again": new}).status_code == 404
    assert client.get(reverse("gateway:mailbox-update", args=[carol_box.pk])).status_code == 404


@pytest.mark.parametrize("route", ["hosts", "relays", "tunnels", "tunnel-peers"])
def test_it_keeps_the_infrastructure_to_the_owner(api, alice, owner, route):
    assert api(alice).get(f"/api/{route}/").json()["results"] == []
    assert api(alice).post(f"/api/{route}/", {}, format="json").status_code == 403
    assert api(owner).get(f"/api/{route}/").status_code == 200
