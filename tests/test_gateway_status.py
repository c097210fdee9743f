"""The status page: items stored from the probes with a history row per change of colour, the
page and the API scoped like everything else (a domain's managers see its items, never the
hosts), a fixed number of queries, and "Check now" run by a real Celery worker."""

import time
import xml.etree.ElementTree as ET

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from gateway import services
from gateway.models import ApiToken, StatusChange, StatusItem
from gateway.status import Colour
from hosts.models import Host
from hosts.topology import FILL, topology_load, topology_svg
from tests.named import PASSWORD
from tests.status_world import checked_world, status_item
from tests.world import build_infrastructure
from zones.models import CheckRun


def dns_item(domain) -> StatusItem:
    return StatusItem.objects.get(key=f"dns:{domain.pk}")


def test_it_writes_one_history_row_per_change_of_colour(family):
    services.status_refresh()
    assert dns_item(family).colour == Colour.AMBER  # never checked
    assert StatusChange.objects.filter(key=f"dns:{family.pk}", before="").count() == 1

    assert services.status_refresh() == []  # nothing changed: no row
    assert StatusChange.objects.count() == 1

    CheckRun.objects.create(domain=family, resolver="lab", passed=20, finished_at=timezone.now())
    [change] = services.status_refresh()
    assert (change.before, change.after) == (Colour.AMBER, Colour.GREEN)
    assert dns_item(family).colour == Colour.GREEN
    assert services.status_refresh() == []
    assert StatusChange.objects.count() == 2


def test_it_forgets_the_items_of_a_deleted_domain_but_keeps_the_probe_running(family, other):
    services.status_refresh()
    other_key = f"dns:{other.pk}"
    other.delete()
    services.status_refresh()
    assert not StatusItem.objects.filter(key=other_key).exists()
    assert StatusItem.objects.filter(key=f"dns:{family.pk}").exists()


@pytest.fixture
def checked(owner, family, other):
    Host.objects.create(name="new", is_relay=True, ssh_address="198.51.100.7")
    services.status_refresh()  # the host is unpinned, so nothing is asked over the network


def test_it_shows_the_owner_every_item_and_the_fix(client, owner, checked):
    client.force_login(owner)
    page = client.get(reverse("gateway:status")).content.decode()
    assert "family.example: DNS records" in page and "other.example: DNS records" in page
    assert "new: files on the host" in page and "Fix:" in page
    assert "<svg" in page and "<title" in page


def test_it_shows_a_manager_only_their_domains_items(client, alice, checked):
    client.force_login(alice)
    page = client.get(reverse("gateway:status")).content.decode()
    assert "family.example: DNS records" in page
    assert "other.example" not in page
    assert "new: files on the host" not in page and "<svg" not in page


def test_it_renders_the_status_page_with_a_fixed_number_of_queries(client, owner, checked):
    client.force_login(owner)
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("gateway:status"))
    for n in range(5):
        services.domain_create(
            name=f"more{n}.example",
            mail_hostname="mail.family.example",
            first_mailbox="user",
            first_mailbox_password=PASSWORD,
        )
    services.status_refresh()
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("gateway:status"))
    assert StatusItem.objects.count() >= 8
    assert len(many) == len(few)


def test_it_lists_the_problems_and_counts_the_ok_items_until_asked_for_them(client, owner):
    for n in range(3):
        status_item(f"hosts:{n}:deployment", Colour.GREEN, label=f"host{n}: last deployment")
    status_item("tunnel:1", Colour.RED, section="Tunnel", label="wg0: home", fix="Start it.")
    client.force_login(owner)
    page = client.get(reverse("gateway:status")).content.decode()
    assert "1 broken · 0 to look at · 3 OK" in page and "wg0: home" in page
    assert "host0: last deployment" not in page and "Show the 3 OK items too" in page
    page = client.get(reverse("gateway:status") + "?all=1").content.decode()
    assert "host0: last deployment" in page and "Show only what needs attention" in page


def test_it_says_when_everything_is_green(client, owner):
    status_item("hosts:1:deployment", Colour.GREEN)
    client.force_login(owner)
    assert "Everything is green" in client.get(reverse("gateway:status")).content.decode()


def test_it_says_what_to_do_before_the_first_check(client, owner, family):
    client.force_login(owner)
    page = client.get(reverse("gateway:status")).content.decode()
    assert "Nothing has been checked yet" in page and "Check now" in page


def test_it_lists_status_in_the_api_scoped_like_the_page(api, owner, alice, family, checked):
    keys = [row["key"] for row in api(alice).get("/api/status/").json()["results"]]
    assert keys == [f"dns:{family.pk}"]
    everything = api(owner).get("/api/status/").json()["results"]
    assert any(row["key"].startswith("hosts:") for row in everything)
    amber = api(owner).get("/api/status/?colour=amber").json()["results"]
    assert amber and {row["colour"] for row in amber} == {"amber"}
    changes = api(alice).get("/api/status-changes/").json()["results"]
    assert [row["key"] for row in changes] == [f"dns:{family.pk}"]


def test_a_domain_token_never_sees_the_infrastructure_even_for_the_owner(
    owner, family, checked, client
):
    _, token = ApiToken.issue(user=owner, name="family only", domains=[family])
    response = client.get("/api/status/", HTTP_AUTHORIZATION=f"Token {token}")
    assert [row["key"] for row in response.json()["results"]] == [f"dns:{family.pk}"]


def test_it_lists_the_api_with_a_fixed_number_of_queries(api, owner, checked):
    client = api(owner)
    with CaptureQueriesContext(connection) as few:
        client.get("/api/status/")
    Host.objects.create(name="another", is_relay=True, ssh_address="198.51.100.8")
    services.status_refresh()
    with CaptureQueriesContext(connection) as many:
        client.get("/api/status/")
    assert len(many) == len(few)


def test_a_read_only_token_cannot_start_a_check(owner, client):
    _, token = ApiToken.issue(user=owner, name="reader", read_only=True)
    response = client.post("/api/status/check/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 403


@pytest.mark.django_db(transaction=True)
def test_check_now_runs_the_probes_on_a_worker(client, owner, family, start_worker, api):
    start_worker()
    assert api(owner).post("/api/status/check/").status_code == 202
    client.force_login(owner)
    client.post(reverse("gateway:status"))
    deadline = time.monotonic() + 60
    while not StatusItem.objects.filter(key=f"dns:{family.pk}").exists():
        assert time.monotonic() < deadline, "the worker did not refresh the status"
        time.sleep(0.2)


def test_it_draws_the_topology_in_the_colours_of_the_status(owner, family):
    world = build_infrastructure()
    vps, peer = world["vps"], world["peer"]
    checked_world(world)
    status_item("extra", Colour.GREEN, element=f"port:{vps.pk}:465")  # the worst colour wins
    svg = ET.fromstring(topology_svg(topology_load()))  # noqa: S314 (our own output)
    ns = {"svg": "http://www.w3.org/2000/svg"}
    assert svg.find("svg:title", ns).text and "home" in svg.find("svg:desc", ns).text
    titles = {group.find("svg:title", ns).text: group for group in svg.iterfind(".//svg:g", ns)}
    assert titles["host vps: OK"].find("svg:rect", ns).get("stroke") == FILL[Colour.GREEN]
    assert (
        titles["host home: Needs attention"].find("svg:rect", ns).get("stroke")
        == FILL[Colour.AMBER]
    )
    tunnel = titles["WireGuard wg0: Broken"].find("svg:line", ns)
    assert tunnel.get("stroke") == FILL[Colour.RED]
    port = titles[f"{vps} port 465 (submissions): Needs attention"]
    assert port.find("svg:rect", ns).get("fill") == FILL[Colour.AMBER]
    assert "host spare: not checked yet" in titles
    assert any(title.startswith("smarthost bridge") for title in titles)
    assert peer.tunnel.interface == "wg0"
