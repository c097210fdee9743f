"""The keys API, with real gpg: upload (armored, base64, multipart), generate, trust anchors,
contact keys and alerts, each scoped like the pages."""

import base64

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from keys import services
from keys.models import CertificationAlert, ContactKey, OpenPGPKey, TrustAnchor
from tests.keys_world import keyring_fixture, world_fixture  # noqa: F401 (fixtures)


@pytest.fixture
def boxes(family, other):
    return {
        "alice": family.mailboxes.get(local_part="alice"),
        "carol": family.mailboxes.get(local_part="carol"),
        "bob": other.mailboxes.get(local_part="bob"),
    }


@pytest.fixture
def ca(world, settings):
    fingerprint = world.make_key("Fake ProtonCA <openpgp-ca@proton.example>", usage="cert")
    settings.MAILGATE_PROTONCA_FINGERPRINT = fingerprint.lower()
    return fingerprint


def test_it_publishes_an_armored_key_and_answers_with_its_wkd_url(api, alice, boxes, world):
    fingerprint = world.make_key("Alice <alice@family.example>", "Alice <alice@work.example>")
    response = api(alice).post(
        "/api/openpgp-keys/",
        {
            "mailbox": boxes["alice"].pk,
            "public_key": world.export(fingerprint, armor=True).decode(),
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    key = OpenPGPKey.objects.get()
    assert body["fingerprint"] == fingerprint
    assert body["user_id"] == "Alice <alice@family.example>"
    assert body["wkd_status"] == "published"
    assert body["wkd_url"] == key.wkd_url and body["wkd_direct_url"] == key.wkd_direct_url
    assert body["autocrypt_header"].startswith("addr=alice@family.example; prefer-encrypt=mutual")


def test_it_takes_a_binary_key_in_base64_or_as_a_file(api, carol, boxes, world):
    fingerprint = world.make_key("carol@family.example")
    binary = world.export(fingerprint)
    client = api(carol)
    encoded = base64.b64encode(binary).decode()
    response = client.post(
        "/api/openpgp-keys/", {"mailbox": boxes["carol"].pk, "public_key": encoded}, format="json"
    )
    assert response.status_code == 201, response.json()
    response = client.post(
        "/api/openpgp-keys/",
        {"mailbox": boxes["carol"].pk, "key_file": _file(binary)},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    assert OpenPGPKey.objects.get().fingerprint == fingerprint  # the same key, replaced


def _file(data: bytes):
    return SimpleUploadedFile("key.gpg", data, content_type="application/octet-stream")


def test_it_refuses_a_key_for_the_wrong_address(api, alice, boxes, world):
    fingerprint = world.make_key("Bob <bob@other.example>")
    response = api(alice).post(
        "/api/openpgp-keys/",
        {
            "mailbox": boxes["alice"].pk,
            "public_key": world.export(fingerprint, armor=True).decode(),
        },
        format="json",
    )
    assert response.status_code == 400
    assert "no user ID for alice@family.example" in str(response.json())
    assert not OpenPGPKey.objects.exists()


def test_it_lets_a_mailbox_owner_publish_only_their_own_key(api, carol, boxes, world):
    fingerprint = world.make_key("alice@family.example")
    response = api(carol).post(
        "/api/openpgp-keys/",
        {
            "mailbox": boxes["alice"].pk,
            "public_key": world.export(fingerprint, armor=True).decode(),
        },
        format="json",
    )
    assert response.status_code == 400
    assert "mailbox" in response.json()["errors"]


def test_it_generates_a_key_and_hands_out_the_private_part_once(api, carol, boxes):
    client = api(carol)
    response = client.post(
        "/api/openpgp-keys/generate/", {"mailbox": boxes["carol"].pk}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["private_key"].startswith("-----BEGIN PGP PRIVATE KEY BLOCK-----")
    assert "revocation certificate" in body["revocation_certificate"]
    again = client.get(f"/api/openpgp-keys/{body['id']}/").json()
    assert "private_key" not in again and "revocation_certificate" not in again
    assert again["fingerprint"] == body["fingerprint"]
    refused = client.post(
        "/api/openpgp-keys/generate/", {"mailbox": boxes["alice"].pk}, format="json"
    )
    assert refused.status_code == 400


def test_it_lets_the_owner_of_a_key_unpublish_it_but_not_rewrite_it(api, carol, boxes):
    generated = services.openpgp_key_generate(mailbox=boxes["carol"])
    url = f"/api/openpgp-keys/{generated.key.pk}/"
    response = api(carol).patch(url, {"published": False, "fingerprint": "B" * 40}, format="json")
    assert response.status_code == 200
    key = OpenPGPKey.objects.get()
    assert (key.published, key.fingerprint) == (False, generated.key.fingerprint)
    assert response.json()["wkd_status"] == "not-published"


def test_it_trusts_the_pinned_ca_and_refuses_another(api, owner, alice, keyring, world, ca):
    impostor = world.make_key("Impostor <openpgp-ca@proton.example>", usage="cert")
    client = api(owner)
    data = {"public_key": world.export(impostor, armor=True).decode()}
    refused = client.post("/api/trust-anchors/", data, format="json")
    assert refused.status_code == 400
    assert "not the pinned" in str(refused.json())
    data = {"public_key": world.export(ca, armor=True).decode(), "name": "ProtonCA"}
    assert api(alice).post("/api/trust-anchors/", data, format="json").status_code == 403
    response = client.post("/api/trust-anchors/", data, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["fingerprint"] == ca
    assert api(alice).get("/api/trust-anchors/").json()["results"] == []


def test_it_imports_contact_keys_and_reports_alerts(api, owner, alice, keyring, world, ca):
    joe = world.make_key("Joe <joe@proton.example>")
    world.certify(ca, joe)
    services.trust_anchor_import(key_data=world.export(ca))
    client = api(owner)
    data = {"public_key": world.export(joe, armor=True).decode(), "label": "Joe"}
    assert api(alice).post("/api/contact-keys/", data, format="json").status_code == 403
    response = client.post("/api/contact-keys/", data, format="json")
    assert response.status_code == 201, response.json()
    assert (response.json()["validity"], response.json()["validity_display"]) == ("f", "Full")

    expires = keyring.check_signatures(joe)[0].user_ids[0].signatures[-1].expires_at
    services.certifications_check(now=expires)
    [alert] = client.get("/api/certification-alerts/").json()["results"]
    assert alert["kind"] == "expired" and alert["contact_fingerprint"] == joe
    assert api(alice).get("/api/certification-alerts/").json()["results"] == []
    assert api(alice).post("/api/certification-alerts/check/").status_code == 403
    assert client.post("/api/certification-alerts/check/").status_code == 202

    contact = ContactKey.objects.get()
    assert client.delete(f"/api/contact-keys/{contact.pk}/").status_code == 204
    assert not CertificationAlert.objects.exists()
    assert joe not in {key.fingerprint for key in keyring.list_keys()}
    anchor = TrustAnchor.objects.get()
    assert client.delete(f"/api/trust-anchors/{anchor.pk}/").status_code == 204
    assert ca not in {key.fingerprint for key in keyring.list_keys()}


def test_it_describes_the_new_endpoints_in_the_schema(api, owner):
    schema = api(owner).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in (
        "/api/openpgp-keys/generate/",
        "/api/trust-anchors/fetch-protonca/",
        "/api/contact-keys/",
        "/api/certification-alerts/check/",
    ):
        assert path in paths
