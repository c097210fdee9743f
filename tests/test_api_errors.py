"""Every API error has one shape (gateway/api/exceptions.py): a sentence in ``detail``, a machine
code in ``code``, the messages by field in ``errors`` on a validation error, and what is in the
way on a conflict."""

from rest_framework.test import APIClient

from gateway.api.views import DomainViewSet
from hosts.choices import DeploymentTrigger
from hosts.models import Deployment
from tests.world import build_infrastructure


def assert_error(response, status: int, code: str, extra: frozenset = frozenset()) -> dict:
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"detail", "code"} | extra, body
    assert isinstance(body["detail"], str) and body["detail"] and body["code"] == code
    return body


def test_a_validation_error_lists_the_messages_by_field(api, owner, family):
    given = {"domain": family.pk, "local_part": "bad local", "password": "x" * 16}
    body = assert_error(
        api(owner).post("/api/mailboxes/", given, format="json"), 400, "invalid", {"errors"}
    )
    assert set(body["errors"]) == {"local_part"}
    assert all(isinstance(message, str) for message in body["errors"]["local_part"])


def test_an_error_not_about_one_field_is_under_non_field_errors(api, owner):
    failed = Deployment.objects.create(
        host=build_infrastructure()["home"], trigger=DeploymentTrigger.CLI, status="failed"
    )
    response = api(owner).post(f"/api/deployments/{failed.pk}/rollback/")
    body = assert_error(response, 400, "invalid", {"errors"})
    assert body["errors"] == {
        "non_field_errors": ["Only a successful deployment can be rolled back to."]
    }


def test_a_body_that_cannot_be_read_has_the_same_shape(api, owner):
    response = api(owner).post("/api/domains/", "{", content_type="application/json")
    assert_error(response, 400, "parse_error")


def test_refusals_missing_rows_and_cooldowns_have_the_same_shape(api, owner, alice, family):
    assert_error(api(alice).post("/api/domains/", {"name": "x.example"}), 403, "permission_denied")
    assert_error(api(alice).get("/api/hosts/999999/"), 404, "not_found")
    assert api(owner).post("/api/status/check/").status_code == 202
    cooled = api(owner).post("/api/status/check/")
    assert_error(cooled, 429, "throttled")
    assert int(cooled["Retry-After"]) > 0


def test_a_protected_delete_names_what_uses_the_object(api, owner):
    world = build_infrastructure()
    response = api(owner).delete(f"/api/relays/{world['relay'].pk}/")
    assert assert_error(response, 409, "protected", {"used_by"})["used_by"] == ["home"]


def test_a_path_no_route_matches_has_the_same_shape_and_pages_keep_theirs(api, owner, client):
    assert_error(api(owner).get("/api/no-such-thing/"), 404, "not_found")
    assert_error(APIClient().get("/api/domains/1/nonsense/"), 404, "not_found")
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


def test_a_crash_answers_in_the_same_shape_without_its_details(api, owner, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(DomainViewSet, "list", crash)
    client = api(owner)
    client.raise_request_exception = False  # as a real server: the handler answers
    response = client.get("/api/domains/")
    assert_error(response, 500, "error")
    assert "secret internals" not in response.content.decode()
