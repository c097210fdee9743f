"""The API: token authentication, the OpenAPI schema and its offline docs page, pagination, and
409 for a delete that rows still depend on."""

from django.urls import reverse
from rest_framework.test import APIClient

from tests.world import build_infrastructure

ROUTES = ["domains", "mailboxes", "aliases", "hosts", "relays", "tunnels", "tunnel-peers"]


def test_it_refuses_requests_without_a_valid_token(db):
    client = APIClient()
    assert client.get("/api/domains/").status_code == 401
    client.credentials(HTTP_AUTHORIZATION="Token mg_not-a-real-token")
    assert client.get("/api/domains/").status_code == 401


def test_it_records_when_a_token_was_last_used(owner):
    from tests.helpers import api_client_for

    client = api_client_for(owner)
    assert client.get("/api/domains/").status_code == 200
    assert owner.api_tokens.get().last_used_at is not None


def test_it_publishes_a_schema_with_every_route(api, owner):
    response = api(owner).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for route in ROUTES:
        assert f"/api/{route}/" in paths
        assert f"/api/{route}/{{id}}/" in paths


def test_it_serves_the_docs_page_without_a_cdn(client, owner):
    client.force_login(owner)
    page = client.get(reverse("api:docs")).content.decode()
    assert "swagger-ui" in page
    assert "cdn." not in page and "unpkg" not in page
    assert "/static/drf_spectacular_sidecar/" in page


def test_it_paginates_lists(api, owner, family):
    body = api(owner).get("/api/aliases/?limit=2").json()
    assert body["count"] == 6 and len(body["results"]) == 2 and body["next"]


def test_it_answers_an_offset_past_any_list_with_an_empty_page(api, owner, family):
    response = api(owner).get(f"/api/aliases/?offset={2**70}&limit={2**70}")
    assert response.status_code == 200
    assert response.json()["results"] == [] and response.json()["count"] == 6


def test_it_answers_409_when_deleting_a_relay_in_use(api, owner):
    world = build_infrastructure()
    response = api(owner).delete(f"/api/relays/{world['relay'].pk}/")
    assert response.status_code == 409
    assert response.json()["used_by"] == ["home"]


def test_it_shows_a_protected_delete_on_the_page(client, owner):
    world = build_infrastructure()
    client.force_login(owner)
    response = client.post(reverse("hosts:relay-delete", args=[world["relay"].pk]), follow=True)
    assert "still in use by home" in response.content.decode()


def test_it_queues_a_key_rotation(api, owner, django_capture_on_commit_callbacks):
    world = build_infrastructure()
    old = world["tunnel"].hub_public_key
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api(owner).post(f"/api/tunnels/{world['tunnel'].pk}/rotate-keys/")
    assert response.status_code == 202
    assert len(callbacks) == 1
    world["tunnel"].refresh_from_db()
    assert world["tunnel"].hub_public_key == old
