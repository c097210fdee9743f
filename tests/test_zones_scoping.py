"""Who sees and does what in DNS: a domain's managers (and the owner) see its records, checks and
keys, check it, push it and generate and rotate its DKIM keys; Bob, who manages another domain,
and Carol, who only owns a mailbox, see none of it (404) through the pages or the API. Lists cost
a fixed number of queries."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from gateway import services as gateway_services
from tests.named import PASSWORD
from tests.zones_named import running, zone_text
from zones import services
from zones.models import CheckRun, DkimKey, PushTarget, ZoneSettings
from zones.resolver import Lookup

DEAD = Lookup([("127.0.0.1", 1)], timeout=0.05)  # checks without a server: quick and red


@pytest.fixture
def both(family, other, settings):
    settings.MAILGATE_DNS_RESOLVER = "127.0.0.1:1"  # never the public DNS from a test
    key = services.dkim_key_generate(domain=family)
    services.check_run(domain=family, lookup=DEAD)
    ZoneSettings.objects.create(domain=family)
    PushTarget.objects.create(
        domain=family, server="127.0.0.1", port=1, tsig_key_name="k", tsig_secret="c2VjcmV0"
    )
    return {"family": family, "key": key, "run": CheckRun.objects.get(domain=family)}


def family_pages(both) -> list[tuple[str, str]]:
    domain, key, run = both["family"].pk, both["key"].pk, both["run"].pk
    return [
        ("get", reverse("zones:dns-domain", args=[domain])),
        ("post", reverse("zones:dns-check", args=[domain])),
        ("get", reverse("zones:dns-zone-file", args=[domain])),
        ("get", reverse("zones:dns-settings", args=[domain])),
        ("post", reverse("zones:dns-settings", args=[domain])),
        ("get", reverse("zones:dns-push-target", args=[domain])),
        ("get", reverse("zones:dns-push", args=[domain])),
        ("post", reverse("zones:dns-push", args=[domain])),
        ("post", reverse("zones:dkim-generate", args=[domain])),
        ("post", reverse("zones:dkim-activate", args=[key])),
        ("post", reverse("zones:dkim-retire", args=[key])),
        ("post", reverse("zones:dkim-forget", args=[key])),
        ("get", reverse("zones:dns-check-detail", args=[run])),
    ]


def family_api(both) -> list[tuple[str, str, dict]]:
    domain, key, run = both["family"].pk, both["key"].pk, both["run"].pk
    settings, target = both["family"].zone_settings.pk, both["family"].push_target.pk
    return [
        ("get", f"/api/dns-zones/{domain}/", {}),
        ("get", f"/api/dns-zones/{domain}/zone-file/", {}),
        ("post", f"/api/dns-zones/{domain}/check/", {}),
        ("get", f"/api/dns-zones/{domain}/plan/", {}),
        ("post", f"/api/dns-zones/{domain}/push/", {}),
        ("get", f"/api/dkim-keys/{key}/", {}),
        ("post", f"/api/dkim-keys/{key}/activate/", {}),
        ("post", f"/api/dkim-keys/{key}/retire/", {}),
        ("delete", f"/api/dkim-keys/{key}/", {}),
        ("get", f"/api/dns-checks/{run}/", {}),
        ("get", f"/api/dns-settings/{settings}/", {}),
        ("patch", f"/api/dns-settings/{settings}/", {"ttl": 60}),
        ("get", f"/api/dns-push-targets/{target}/", {}),
        ("patch", f"/api/dns-push-targets/{target}/", {"server": "192.0.2.66"}),
    ]


def unchanged(both) -> None:
    key = DkimKey.objects.get(pk=both["key"].pk)
    assert (key.active, key.retired_at) == (True, None)
    assert DkimKey.objects.count() == 1
    assert CheckRun.objects.count() == 1
    assert ZoneSettings.objects.get().ttl == 3600
    assert PushTarget.objects.get().server == "127.0.0.1"


@pytest.mark.parametrize("who", ["bob", "carol"])
def test_it_hides_another_domains_dns_pages(client, request, both, who):
    client.force_login(request.getfixturevalue(who))
    assert "family.example" not in client.get(reverse("zones:dns-list")).content.decode()
    for method, url in family_pages(both):
        response = getattr(client, method)(url)
        assert response.status_code == 404, (method, url)
    unchanged(both)


@pytest.mark.parametrize("who", ["bob", "carol"])
def test_it_hides_another_domains_dns_in_the_api(api, request, both, who):
    client = api(request.getfixturevalue(who))
    for route in ("dns-zones", "dkim-keys", "dns-checks", "dns-settings", "dns-push-targets"):
        listing = client.get(f"/api/{route}/").json()["results"]
        assert "family.example" not in str(listing), route
    for method, url, data in family_api(both):
        response = getattr(client, method)(url, data, format="json")
        assert response.status_code == 404, (method, url, response.content)
    unchanged(both)


def test_it_refuses_to_create_dns_rows_for_another_domain(api, bob, both):
    client = api(bob)
    family = both["family"].pk
    assert client.post("/api/dkim-keys/", {"domain": family}, format="json").status_code == 400
    for route, data in [
        ("dns-settings", {"domain": family}),
        ("dns-push-targets", {"domain": family, "kind": "provider", "provider": "cloudflare"}),
    ]:
        response = client.post(f"/api/{route}/", {**data, "provider_token": "x"}, format="json")
        assert response.status_code == 400, response.json()
        assert "domain" in response.json()["errors"]
    unchanged(both)


def test_the_manager_checks_and_rotates_their_own_domain(
    client, api, alice, both, tmp_path, settings
):
    client.force_login(alice)
    page = client.get(reverse("zones:dns-domain", args=[both["family"].pk])).content.decode()
    assert "mail.family.example" in page and "dkim._domainkey.family.example" in page
    created = api(alice).post("/api/dkim-keys/", {"domain": both["family"].pk}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["state"] == "published"
    assert "private_key" not in created.json()
    new = created.json()["id"]
    assert api(alice).post(f"/api/dkim-keys/{new}/activate/").json()["active"] is True
    assert api(alice).post(f"/api/dkim-keys/{both['key'].pk}/retire/").json()["state"] == "retired"
    # A real resolver that answers: the dead one of ``both`` would make the check wait 4 s.
    with running(tmp_path / "named", {"family.example": zone_text("family.example")}) as server:
        settings.MAILGATE_DNS_RESOLVER = f"127.0.0.1:{server.port}"
        check = client.post(reverse("zones:dns-check", args=[both["family"].pk]))
    assert check.status_code == 302
    assert CheckRun.objects.filter(domain=both["family"]).count() == 2


def test_a_read_only_view_of_a_key_never_shows_its_private_half(api, alice, both):
    body = api(alice).get(f"/api/dkim-keys/{both['key'].pk}/").content.decode()
    assert "PRIVATE" not in body and both["key"].private_key[40:80] not in body


def more_domains(owner, count: int) -> None:
    for n in range(count):
        domain = gateway_services.domain_create(
            name=f"more{n}.example",
            mail_hostname="mail.family.example",
            first_mailbox=f"user{n}",
            first_mailbox_password=PASSWORD,
        )
        domain.managers.add(owner)
        services.check_run(domain=domain, lookup=DEAD)


@pytest.mark.parametrize("url", [reverse("zones:dns-list"), "/api/dns-zones/", "/api/dns-checks/"])
def test_it_lists_with_a_fixed_number_of_queries(client, api, owner, both, url):
    client.force_login(owner)
    token_client = api(owner)
    get = client.get if not url.startswith("/api/") else token_client.get
    with CaptureQueriesContext(connection) as few:
        assert get(url).status_code == 200
    more_domains(owner, 4)
    with CaptureQueriesContext(connection) as many:
        assert get(url).status_code == 200
    assert len(many) == len(few)
