"""The keys pages, used as people use them: upload a file, generate and download a key, trust
the CA, import a contact's key, read the alerts; list pages cost a fixed number of queries."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from gateway import services as directory
from keys import services
from keys.models import ContactKey, OpenPGPKey, TrustAnchor
from tests.keys_world import keyring_fixture, world_fixture  # noqa: F401 (fixtures)
from tests.named import PASSWORD

PAGES = [
    "keys:openpgpkey-list",
    "keys:openpgpkey-create",
    "keys:openpgpkey-generate",
    "keys:trustanchor-list",
    "keys:trustanchor-create",
    "keys:contactkey-list",
    "keys:contactkey-create",
    "keys:certification-alerts",
]


def upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


@pytest.mark.parametrize("page", PAGES)
def test_it_renders_every_page_for_the_owner(client, owner, page):
    client.force_login(owner)
    assert client.get(reverse(page)).status_code == 200


def test_it_keeps_trust_decisions_to_the_owner(client, alice, family):
    client.force_login(alice)
    assert client.get(reverse("keys:openpgpkey-generate")).status_code == 200
    assert client.get(reverse("keys:trustanchor-create")).status_code == 403
    assert client.get(reverse("keys:contactkey-create")).status_code == 403
    assert client.post(reverse("keys:certifications-check")).status_code == 403
    assert "Trust anchors" not in client.get(reverse("keys:openpgpkey-list")).content.decode()


def test_it_publishes_an_uploaded_file_and_shows_where(client, alice, family, world):
    fingerprint = world.make_key("Alice <alice@family.example>")
    mailbox = family.mailboxes.get(local_part="alice")
    client.force_login(alice)
    response = client.post(
        reverse("keys:openpgpkey-create"),
        {"mailbox": mailbox.pk, "key_file": upload("alice.gpg", world.export(fingerprint))},
    )
    assert response.status_code == 302, response.context["form"].errors
    key = OpenPGPKey.objects.get(fingerprint=fingerprint)
    listing = client.get(reverse("keys:openpgpkey-list")).content.decode()
    assert "Published" in listing and key.wkd_url.replace("&", "&amp;") in listing
    detail = client.get(reverse("keys:openpgpkey-detail", args=[key.pk])).content.decode()
    assert key.wkd_url in detail and key.wkd_direct_url in detail
    assert f"Autocrypt: {key.autocrypt_header}" in detail


def test_it_shows_why_a_key_is_refused(client, alice, family, world):
    fingerprint = world.make_key("Mallory <mallory@elsewhere.example>")
    client.force_login(alice)
    response = client.post(
        reverse("keys:openpgpkey-create"),
        {
            "mailbox": family.mailboxes.get(local_part="alice").pk,
            "key_text": world.export(fingerprint, armor=True).decode(),
        },
    )
    assert response.status_code == 200
    assert "no user ID for alice@family.example" in response.content.decode()
    assert not OpenPGPKey.objects.exists()


def test_it_downloads_a_generated_key_once(client, carol, family):
    mailbox = family.mailboxes.get(local_part="carol")
    client.force_login(carol)
    response = client.post(
        reverse("keys:openpgpkey-generate"),
        {"mailbox": mailbox.pk, "passphrase": "pass phrase", "passphrase_again": "pass phrase"},
    )
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="carol@family.example')
    assert response["Cache-Control"] == "no-store"
    body = response.content.decode()
    assert body.startswith("-----BEGIN PGP PRIVATE KEY BLOCK-----")
    assert "revocation certificate" in body
    key = OpenPGPKey.objects.get(mailbox=mailbox)
    assert "PRIVATE" not in key.public_key
    assert client.get(reverse("keys:openpgpkey-detail", args=[key.pk])).status_code == 200


def test_it_refuses_to_generate_for_someone_elses_mailbox(client, carol, family):
    client.force_login(carol)
    alice_box = family.mailboxes.get(local_part="alice")
    response = client.post(reverse("keys:openpgpkey-generate"), {"mailbox": alice_box.pk})
    assert response.status_code == 200
    assert "mailbox" in response.context["form"].errors
    assert not OpenPGPKey.objects.exists()


def test_it_trusts_the_ca_and_shows_contacts_validity_and_alerts(
    client, owner, keyring, world, settings
):
    ca = world.make_key("Fake ProtonCA <openpgp-ca@proton.example>", usage="cert")
    impostor = world.make_key("Impostor <openpgp-ca@proton.example>", usage="cert")
    joe = world.make_key("Joe <joe@proton.example>")
    world.certify(ca, joe)
    settings.MAILGATE_PROTONCA_FINGERPRINT = ca.lower()
    client.force_login(owner)

    refused = client.post(
        reverse("keys:trustanchor-create"),
        {"name": "ProtonCA", "key_file": upload("ca.asc", world.export(impostor, armor=True))},
    )
    assert "not the pinned" in refused.content.decode()
    assert not TrustAnchor.objects.exists()

    response = client.post(
        reverse("keys:trustanchor-create"),
        {"name": "ProtonCA", "key_file": upload("ca.asc", world.export(ca, armor=True))},
    )
    assert response.status_code == 302
    response = client.post(
        reverse("keys:contactkey-create"),
        {"label": "Joe", "key_file": upload("joe.gpg", world.export(joe))},
    )
    assert response.status_code == 302
    assert "Full" in client.get(reverse("keys:contactkey-list")).content.decode()

    contact = ContactKey.objects.get()
    expires = keyring.check_signatures(joe)[0].user_ids[0].signatures[-1].expires_at
    services.certifications_check(now=expires + timedelta(days=1))
    page = client.get(reverse("keys:certification-alerts")).content.decode()
    assert "Certification expired" in page and "Joe &lt;joe@proton.example&gt;" in page

    client.post(reverse("keys:certifications-check"))  # today: nothing has lapsed yet
    assert "No certification" in client.get(reverse("keys:certification-alerts")).content.decode()
    client.post(reverse("keys:contactkey-delete", args=[contact.pk]))
    assert not ContactKey.objects.exists()
    assert joe not in {key.fingerprint for key in keyring.list_keys()}


def test_it_lists_keys_with_a_fixed_number_of_queries(client, owner, family):
    client.force_login(owner)
    armored = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nx\n-----END PGP PUBLIC KEY BLOCK-----\n"
    url = reverse("keys:openpgpkey-list")
    OpenPGPKey.objects.create(
        mailbox=family.mailboxes.first(), fingerprint="A" * 40, public_key=armored
    )
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for n in range(5):
        mailbox = directory.mailbox_create(domain=family, local_part=f"u{n}", password=PASSWORD)
        OpenPGPKey.objects.create(mailbox=mailbox, fingerprint=f"{n}" * 40, public_key=armored)
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    assert len(many) == len(few)
