"""Filtering the API lists by name and searching them: only ever within what the user may see,
and a domain the user may not see looks exactly like one that does not exist."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from gateway import services
from hosts.models import Deployment
from tests.named import PASSWORD
from tests.world import build_infrastructure


def addresses(response) -> list[str]:
    assert response.status_code == 200, response.content
    return sorted(row["address"] for row in response.json()["results"])


def test_it_filters_mailboxes_by_domain_name_and_searches_them(api, owner, family, other):
    client = api(owner)
    assert addresses(client.get("/api/mailboxes/?domain=other.example")) == ["bob@other.example"]
    assert addresses(client.get("/api/mailboxes/?search=car")) == ["carol@family.example"]
    family.mailboxes.filter(local_part="carol").update(enabled=False)
    found = client.get("/api/mailboxes/?domain=family.example&enabled=false")
    assert addresses(found) == ["carol@family.example"]


def test_a_manager_filtering_by_another_familys_domain_gets_nothing(api, alice, family, other):
    client = api(alice)
    assert addresses(client.get("/api/mailboxes/?domain=other.example")) == []
    assert addresses(client.get("/api/mailboxes/?domain=nowhere.example")) == []
    assert addresses(client.get("/api/aliases/?search=other")) == []


def test_it_refuses_a_filter_value_it_cannot_read(api, owner):
    response = api(owner).get("/api/deployments/?status=exploded")
    assert response.status_code == 400
    assert "status" in response.json()["errors"]


def test_it_filters_hosts_by_role_and_deployments_by_host_and_status(api, owner):
    world = build_infrastructure()
    client = api(owner)
    gateways = client.get("/api/hosts/?is_gateway=true").json()["results"]
    assert [row["name"] for row in gateways] == [world["vps"].name]
    Deployment.objects.create(host=world["vps"], trigger="api", status="failed")
    Deployment.objects.create(host=world["home"], trigger="api", status="succeeded")
    failed = client.get(f"/api/deployments/?host={world['vps'].name}&status=failed").json()
    assert [(row["host"], row["status"]) for row in failed["results"]] == [("vps", "failed")]


@pytest.mark.parametrize("query", ["?domain=family.example", "?search=user"])
def test_a_filtered_list_costs_the_same_queries_for_many_rows(api, owner, family, query):
    client = api(owner)
    services.mailbox_create(domain=family, local_part="user", password=PASSWORD)
    with CaptureQueriesContext(connection) as few:
        client.get(f"/api/mailboxes/{query}")
    for n in range(10):
        services.mailbox_create(domain=family, local_part=f"user{n}", password=PASSWORD)
    with CaptureQueriesContext(connection) as many:
        client.get(f"/api/mailboxes/{query}")
    assert len(many) == len(few)
