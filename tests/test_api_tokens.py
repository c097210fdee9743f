"""API tokens limited to some domains and to reading: what such a token reaches, through the
API, and how people make and revoke their tokens."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from gateway.models import ApiToken, Mailbox
from tests.helpers import client_for
from tests.named import PASSWORD
from tests.world import build_infrastructure


@pytest.fixture
def scoped(owner, family, other):
    """The owner's token limited to family.example."""
    build_infrastructure()
    _, token = ApiToken.issue(user=owner, name="family script", domains=[family])
    return client_for(token)


def addresses(response) -> set[str]:
    return {row["address"] for row in response.json()["results"]}


def test_a_domain_token_sees_only_its_domains(scoped, family):
    assert {row["name"] for row in scoped.get("/api/domains/").json()["results"]} == {
        "family.example"
    }
    assert all(a.endswith("@family.example") for a in addresses(scoped.get("/api/mailboxes/")))
    bob = Mailbox.objects.get(local_part="bob")
    assert scoped.get(f"/api/mailboxes/{bob.pk}/").status_code == 404


def test_a_domain_token_never_reaches_the_infrastructure(scoped):
    assert scoped.get("/api/hosts/").json()["results"] == []
    assert scoped.get("/api/deployments/").json()["results"] == []
    assert scoped.post("/api/hosts/deploy-all/").status_code == 403
    assert scoped.post("/api/relays/", {"name": "x"}, format="json").status_code == 403


def test_a_domain_token_cannot_create_outside_its_domains(scoped, other, family):
    outside = {"domain": other.pk, "local_part": "eve", "password": PASSWORD}
    response = scoped.post("/api/mailboxes/", outside, format="json")
    assert response.status_code == 400 and "domain" in response.json()["errors"]
    inside = {**outside, "domain": family.pk}
    assert scoped.post("/api/mailboxes/", inside, format="json").status_code == 201


def test_a_read_only_token_only_reads(owner, family):
    _, token = ApiToken.issue(user=owner, name="monitor", read_only=True)
    client = client_for(token)
    assert client.get("/api/mailboxes/").status_code == 200
    created = client.post(
        "/api/mailboxes/",
        {"domain": family.pk, "local_part": "eve", "password": PASSWORD},
        format="json",
    )
    assert created.status_code == 403 and "read-only" in created.json()["detail"]
    assert not Mailbox.objects.filter(local_part="eve").exists()


def test_a_token_cannot_be_limited_to_someone_elses_domain(alice, other):
    with pytest.raises(ValidationError, match="your own domains"):
        ApiToken.issue(user=alice, name="sneaky", domains=[other])


def test_tokens_are_made_once_and_revoked_through_the_api(api, alice, family, other):
    client = api(alice)
    backup = {"name": "backup", "domains": [family.pk], "read_only": True, "password": PASSWORD}
    made = client.post("/api/tokens/", backup, format="json")
    assert made.status_code == 201 and made.json()["token"].startswith("mg_")
    listed = client.get(f"/api/tokens/{made.json()['id']}/").json()
    assert "token" not in listed and listed["hint"] == made.json()["token"][:8]
    outside = {"name": "x", "domains": [other.pk], "password": PASSWORD}
    refused = client.post("/api/tokens/", outside, format="json")
    assert refused.status_code == 400
    limited = client_for(made.json()["token"])
    wider = {"name": "y", "password": PASSWORD}
    assert limited.post("/api/tokens/", wider, format="json").status_code == 403
    assert client.delete(f"/api/tokens/{made.json()['id']}/").status_code == 204
    assert limited.get("/api/domains/").status_code == 401


def test_the_tokens_page_shows_a_new_token_once(client, alice, family):
    client.force_login(alice)
    page = client.post(
        reverse("gateway:api-tokens"),
        {"name": "phone", "domains": [family.pk], "read_only": "on", "password": PASSWORD},
    ).content.decode()
    token = ApiToken.objects.get(name="phone")
    assert "shown this once" in page and "mg_" in page
    again = client.get(reverse("gateway:api-tokens")).content.decode()
    assert "shown this once" not in again and token.hint in again and "read only" in again
    client.post(reverse("gateway:api-tokens"), {"revoke": token.pk})
    assert not ApiToken.objects.filter(pk=token.pk).exists()
