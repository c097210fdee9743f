"""The panel's smaller holes closed: status checks are the owner's and rate limited, the DNS push
target's server and port are the owner's, managers see no other accounts and not the owner's
smarthost, a domain-limited token cannot hand a domain to others, the schema needs a login, and the
pages send CSP, HSTS and Secure cookies over HTTPS."""

import os
import subprocess
import sys

import pytest
from django.urls import reverse

from gateway.models import ApiToken
from tests.shared import ROOT
from tests.world import build_infrastructure
from zones.models import PushTarget


def test_only_the_owner_starts_a_status_check(api, client, alice, owner, family):
    assert api(alice).post("/api/status/check/").status_code == 403
    _, token = ApiToken.issue(user=owner, name="family only", domains=[family])
    limited = client.post("/api/status/check/", HTTP_AUTHORIZATION=f"Token {token}")
    assert limited.status_code == 403
    client.force_login(alice)
    assert client.post(reverse("gateway:status")).status_code == 403
    assert "Check now" not in client.get(reverse("gateway:status")).content.decode()


def test_status_checks_are_queued_at_most_once_a_minute(
    api, client, owner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        assert api(owner).post("/api/status/check/").status_code == 202
        again = api(owner).post("/api/status/check/")
        client.force_login(owner)
        page = client.post(reverse("gateway:status"), follow=True).content.decode()
    assert again.status_code == 429 and 0 < int(again["Retry-After"]) <= 60
    assert "moments ago" in page
    assert len(queued) == 1


@pytest.fixture
def push_target(family):
    return PushTarget.objects.create(
        domain=family,
        server="192.0.2.53",
        tsig_key_name="mailgate",
        tsig_secret="c2VjcmV0",
    )


def test_a_manager_cannot_aim_the_dns_push_elsewhere(api, alice, push_target):
    client = api(alice)
    url = f"/api/dns-push-targets/{push_target.pk}/"
    for change in ({"server": "10.0.0.1"}, {"port": 8053}):
        response = client.patch(url, change, format="json")
        assert response.status_code == 400 and set(change) <= set(response.json()["errors"]), change
    assert client.patch(url, {"tsig_key_name": "family"}, format="json").status_code == 200
    push_target.refresh_from_db()
    assert (push_target.server, push_target.port) == ("192.0.2.53", 53)
    assert push_target.tsig_key_name == "family"


def test_a_manager_cannot_create_a_push_target_aimed_anywhere(api, alice, family):
    aimed = {
        "domain": family.pk,
        "server": "10.0.0.1",
        "tsig_key_name": "k",
        "tsig_secret": "c2VjcmV0",
    }
    response = api(alice).post("/api/dns-push-targets/", aimed, format="json")
    assert response.status_code == 400 and "server" in response.json()["errors"]
    assert not PushTarget.objects.exists()


def test_the_push_target_page_keeps_the_server_for_managers(client, alice, push_target, family):
    client.force_login(alice)
    page = client.get(reverse("zones:dns-push-target", args=[family.pk])).content.decode()
    assert "Only the owner changes it." in page
    form = {
        "kind": "rfc2136",
        "server": "10.0.0.1",
        "port": "9",
        "tsig_key_name": "family",
        "tsig_algorithm": push_target.tsig_algorithm,
    }
    client.post(reverse("zones:dns-push-target", args=[family.pk]), form)
    push_target.refresh_from_db()
    assert (push_target.server, push_target.port) == ("192.0.2.53", 53)
    assert push_target.tsig_key_name == "family"


def test_the_owner_aims_the_dns_push(api, owner, push_target):
    url = f"/api/dns-push-targets/{push_target.pk}/"
    assert (
        api(owner).patch(url, {"server": "192.0.2.54", "port": 5353}, format="json").status_code
        == 200
    )


def test_the_browsable_api_lists_no_other_account_to_a_manager(client, owner, alice, bob, family):
    client.force_login(alice)
    for path in ("/api/mailboxes/", "/api/domains/"):
        page = client.get(path, HTTP_ACCEPT="text/html").content.decode()
        assert "<select" in page, path
        for name in ("owner", "bob", "carol"):
            assert f">{name}</option>" not in page, (path, name)
    client.force_login(owner)
    page = client.get("/api/domains/", HTTP_ACCEPT="text/html").content.decode()
    assert ">bob</option>" in page


def test_the_dns_page_does_not_name_the_smarthost_to_a_manager(client, alice, family):
    build_infrastructure()
    client.force_login(alice)
    page = client.get(reverse("zones:dns-domain", args=[family.pk])).content.decode()
    assert "smarthost" in page and "bridge" not in page


def test_a_domain_limited_token_cannot_hand_the_domain_to_others(owner, bob, family, client):
    _, token = ApiToken.issue(user=owner, name="family only", domains=[family])
    url = f"/api/domains/{family.pk}/"
    response = client.patch(
        url,
        {"managers": [bob.pk]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token}",
    )
    assert response.status_code == 400 and "managers" in response.json()["errors"]
    assert list(family.managers.values_list("username", flat=True)) == ["alice"]
    renamed = client.patch(
        url,
        {"enabled": False},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token}",
    )
    assert renamed.status_code == 200


def test_the_owner_changes_who_manages_a_domain(api, owner, bob, family):
    response = api(owner).patch(f"/api/domains/{family.pk}/", {"managers": [bob.pk]}, format="json")
    assert response.status_code == 200
    assert list(family.managers.values_list("username", flat=True)) == ["bob"]


def test_the_schema_needs_a_login(client, api, owner):
    assert client.get("/api/schema/").status_code == 401
    assert client.get("/api/docs/").status_code == 401
    assert api(owner).get("/api/schema/").status_code == 200
    client.force_login(owner)
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and "<script>" not in docs.content.decode()


def test_every_page_sends_a_content_security_policy(client, alice):
    assert "default-src 'self'" in client.get(reverse("gateway:login"))["Content-Security-Policy"]
    client.force_login(alice)
    assert "default-src 'self'" in client.get("/api/domains/")["Content-Security-Policy"]


HTTPS_CHECK = """
import django; django.setup()
from django.test import Client
response = Client().get("/login/", HTTP_HOST="localhost", HTTP_X_FORWARDED_PROTO="https")
print(response.status_code, response.get("Strict-Transport-Security", "-"))
print(response.cookies["csrftoken"]["secure"] or "-")
from django.conf import settings
print(settings.SESSION_COOKIE_SECURE)
"""


def run_https_check(tmp_path, **variables) -> list[str]:
    environment = {
        "PATH": os.environ["PATH"],
        "MAILGATE_DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "SECRET_KEY": "x",
        "MAILGATE_ENCRYPTION_KEYS": "qp4DmdSSnhBZJ4OA6cXx7a4ZCkqmJV0S1eqhxO5S8tA=",
        **variables,
    }
    result = subprocess.run(
        [sys.executable, "-c", HTTPS_CHECK],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.slow  # two processes of their own, each loading Django and the settings
def test_over_https_it_sends_hsts_and_secure_cookies(tmp_path):
    assert run_https_check(tmp_path, MAILGATE_HTTPS="true") == [
        "200 max-age=31536000",
        "True",
        "True",
    ]
    assert run_https_check(tmp_path) == ["200 -", "-", "False"]
