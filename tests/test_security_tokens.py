"""A token limited to domains stays limited forever: once its domains are deleted it reaches nothing
(not everything), and deleting a token's last domain says so first (README.md, API tokens)."""

import pytest
from django.apps import apps
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.urls import reverse

from gateway.models import ApiToken, Domain
from tests.helpers import client_for
from tests.named import PASSWORD
from tests.world import build_infrastructure


@pytest.fixture
def family_token(owner, family, other):
    """The owner's token limited to family.example."""
    build_infrastructure()
    return ApiToken.issue(user=owner, name="family script", domains=[family])


def results(response) -> list:
    return response.json()["results"]


def test_it_reaches_nothing_once_its_domains_are_deleted(family_token, family):
    row, token = family_token
    family.delete()
    client = client_for(token)
    for path in ("/api/domains/", "/api/mailboxes/", "/api/aliases/", "/api/hosts/"):
        assert results(client.get(path)) == [], path
    for path in ("/api/relays/", "/api/deployments/", "/api/tokens/"):
        assert results(client.get(path)) == [], path
    assert client.post("/api/hosts/deploy-all/").status_code == 403
    minted = client.post("/api/tokens/", {"name": "x", "password": PASSWORD}, format="json")
    assert minted.status_code == 403
    row.refresh_from_db()
    assert row.limited and not row.domains.exists()


def test_a_limited_token_never_mints_a_token_even_in_code(family_token):
    user = family_token[0].user
    user.token_domain_ids = []  # as the authentication sets it for a token without domains
    with pytest.raises(PermissionDenied, match="cannot make tokens"):
        ApiToken.issue(user=user, name="wider")


def test_the_delete_page_names_the_tokens_left_without_domains(client, owner, family, other):
    ApiToken.issue(user=owner, name="family only", domains=[family])
    ApiToken.issue(user=owner, name="both", domains=[family, other])
    ApiToken.issue(user=owner, name="everything")
    client.force_login(owner)
    page = client.get(reverse("gateway:domain-delete", args=[family.pk])).content.decode()
    assert "family only" in page and "reach nothing" in page
    assert "both" not in page and "everything" not in page
    done = client.post(reverse("gateway:domain-delete", args=[family.pk]), follow=True)
    assert "family only" in done.content.decode()
    tokens = client.get(reverse("gateway:api-tokens")).content.decode()
    assert "none left" in tokens


def test_the_api_delete_says_what_it_did_to_the_tokens(api, owner, alice, family):
    ApiToken.issue(user=alice, name="alice backup", domains=[family])
    response = api(owner).delete(f"/api/domains/{family.pk}/")
    assert response.status_code == 200
    [effect] = response.json()["effects"]
    assert "alice backup" in effect and "alice" in effect and "reach nothing" in effect
    assert not Domain.objects.filter(pk=family.pk).exists()


def test_the_api_lists_whether_a_token_is_limited(api, owner, family):
    ApiToken.issue(user=owner, name="family only", domains=[family])
    rows = {row["name"]: row["limited"] for row in results(api(owner).get("/api/tokens/"))}
    assert rows == {"family only": True, "tests": False}


def test_the_migration_keeps_tokens_limited_whose_domains_were_deleted_before(owner, family):
    """Before the field, a limited token that lost its domains looked unlimited; the change
    log still says it was given domains."""
    row, _ = ApiToken.issue(user=owner, name="family only", domains=[family])
    unlimited, _ = ApiToken.issue(user=owner, name="everything")
    family.delete()
    ApiToken.objects.update(limited=False)
    migration = __import__("gateway.migrations.0004_token_limits", fromlist=["mark"])
    with connection.schema_editor() as editor:
        migration.mark_limited_tokens(apps, editor)
    row.refresh_from_db()
    unlimited.refresh_from_db()
    assert row.limited and not unlimited.limited
