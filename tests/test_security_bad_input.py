"""No HTTP 500 from bad input. Each hostile value gets a clear 400 (or an empty list, for a filter
that names nothing) and nothing is saved."""

import json
import socket
import threading

import pytest
from django.urls import reverse

from gateway.models import Alias, ApiToken, Mailbox
from keys import services as key_services
from tests.named import PASSWORD, alice_once, carol_once, family_once  # noqa: F401 (fixtures, once)
from zones import services as zone_services
from zones.models import PushTarget
from zones.push import PushError

LIST_URLS = [
    "/api/domains/",
    "/api/mailboxes/",
    "/api/aliases/",
    "/api/hosts/",
    "/api/deployments/",
    "/api/openpgp-keys/",
    "/api/status/",
    "/api/status-changes/",
    "/api/dns-checks/",
    "/api/dns-zones/",
]
HOSTILE = ["\u00b2", "1" * 23, "-1", "1.5", "%ED%A0%80", "%00", "#x", "a b"]
FILTERS = ["domain", "host", "enabled", "status", "colour", "search", "limit", "offset"]


@pytest.mark.parametrize("url", LIST_URLS)
def test_it_never_answers_500_to_a_hostile_filter(api, owner, family, url):
    client = api(owner)
    for name in FILTERS:
        for value in HOSTILE:
            response = client.get(f"{url}?{name}={value}")
            assert response.status_code in (200, 400), (name, value, response.content)


def test_it_refuses_a_domain_filter_that_is_not_a_whole_number(api, owner, family):
    response = api(owner).get("/api/dns-checks/?domain=\u00b2")
    assert response.status_code == 400
    assert "whole number" in str(response.json()["errors"]["domain"])
    assert api(owner).get(f"/api/dns-checks/?domain={'1' * 23}").json()["results"] == []


@pytest.mark.parametrize("url", ["/api/mailboxes/", "/api/aliases/", "/api/domains/"])
def test_it_refuses_json_nested_100000_deep(api, owner, family, url):
    body = '{"local_part": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = api(owner).post(url, body, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]


@pytest.mark.parametrize(
    ("url", "field"),
    [("/api/mailboxes/", "local_part"), ("/api/domains/", "name"), ("/api/aliases/", "local_part")],
)
def test_it_refuses_a_lone_surrogate(api, owner, family, url, field):
    body = {
        "domain": family.pk,
        "name": "new.example",
        "mail_hostname": "mail.new.example",
        "first_mailbox": "joe",
        "first_mailbox_password": PASSWORD,
        "password": PASSWORD,
        "destinations": ["alice@family.example"],
        field: "a\ud800",
    }
    before = Mailbox.objects.count(), Alias.objects.count()
    response = api(owner).post(url, json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert "surrogate" in response.json()["detail"]
    assert (Mailbox.objects.count(), Alias.objects.count()) == before


def test_a_lone_surrogate_is_no_character_for_the_model_either(family):
    alias = Alias(domain=family, local_part="a\ud800", destinations=["alice@family.example"])
    with pytest.raises(Exception, match="control characters") as refused:
        alias.full_clean()
    assert "\\ud800" in str(refused.value)


def test_it_refuses_a_revoke_that_is_not_a_token_id(client, owner):
    ApiToken.issue(user=owner, name="keep")
    client.force_login(owner)
    response = client.post(reverse("gateway:api-tokens"), {"revoke": "abc"})
    assert response.status_code == 400
    assert ApiToken.objects.filter(name="keep").exists()


@pytest.fixture
def closing_server():
    """A DNS 'server' on TCP that accepts each connection and closes it without a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            connection.close()

    thread = threading.Thread(target=serve)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


def test_it_says_when_the_push_target_closes_the_connection(api, owner, family, closing_server):
    target = PushTarget(
        domain=family,
        server="127.0.0.1",
        port=closing_server,
        tsig_key_name="mailgate",
        tsig_secret="c2VjcmV0IHRoYXQgaXMgbm90IHRoZSBrZXkgYXQgYWxs",
    )
    target.full_clean()
    target.save()
    with pytest.raises(PushError, match="did not answer"):
        zone_services.push_plan(target=target)
    response = api(owner).get(f"/api/dns-zones/{family.pk}/plan/")
    assert response.status_code == 502
    assert "did not answer" in response.json()["detail"]


def test_it_refuses_a_key_for_a_mailbox_saved_with_a_hash_first(api, owner, family):
    Mailbox.objects.filter(local_part="carol").update(local_part="#carol")
    box = Mailbox.objects.get(local_part="#carol")
    response = api(owner).post("/api/openpgp-keys/generate/", {"mailbox": box.pk}, format="json")
    assert response.status_code == 400
    assert "cannot have an OpenPGP key" in str(response.json())
    assert not box.openpgp_keys.exists()
    with pytest.raises(Exception, match="cannot have an OpenPGP key"):
        key_services.openpgp_key_upload(mailbox=box, key_data=b"")
