"""Every page renders for the people who may use it, and list pages cost a fixed number of
queries however many rows they show."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from gateway import services
from gateway.models import Alias, Domain, Mailbox
from hosts.models import Host, Relay, Tunnel, TunnelPeer
from keys.models import OpenPGPKey
from tests.helpers import page_url
from tests.named import PASSWORD
from tests.world import build_infrastructure

KINDS = {
    "domain": Domain,
    "mailbox": Mailbox,
    "alias": Alias,
    "openpgpkey": OpenPGPKey,
    "host": Host,
    "relay": Relay,
    "tunnel": Tunnel,
    "tunnelpeer": TunnelPeer,
}


@pytest.fixture
def world(owner, family):
    return build_infrastructure()


@pytest.mark.parametrize("kind", KINDS)
def test_it_renders_the_list_and_create_pages_for_the_owner(client, owner, world, kind):
    client.force_login(owner)
    assert client.get(page_url(KINDS[kind], "list")).status_code == 200
    assert client.get(page_url(KINDS[kind], "create")).status_code == 200


@pytest.mark.parametrize("kind", ["host", "relay", "tunnel", "tunnelpeer"])
def test_it_renders_the_edit_page_for_the_owner(client, owner, world, kind):
    client.force_login(owner)
    obj = world[{"host": "vps", "relay": "relay", "tunnel": "tunnel", "tunnelpeer": "peer"}[kind]]
    assert client.get(page_url(KINDS[kind], "update", obj.pk)).status_code == 200


def test_it_renders_the_dashboard_for_everyone(client, owner, alice, carol, world):
    for user in (owner, alice, carol):
        client.force_login(user)
        assert client.get(reverse("hosts:dashboard")).status_code == 200


def test_it_keeps_the_infrastructure_pages_from_managers(client, alice, world):
    client.force_login(alice)
    assert client.get(reverse("hosts:host-create")).status_code == 403
    assert client.get(reverse("hosts:host-update", args=[world["vps"].pk])).status_code == 404


def test_it_says_what_to_do_on_an_empty_list(client, owner):
    client.force_login(owner)
    page = client.get(reverse("hosts:host-list")).content.decode()
    assert "No hosts yet" in page and "Add the VPS" in page


@pytest.mark.parametrize("kind", ["domain", "mailbox", "alias"])
def test_it_lists_with_a_fixed_number_of_queries(client, owner, family, kind):
    client.force_login(owner)
    url = page_url(KINDS[kind], "list")
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for n in range(5):
        domain = services.domain_create(
            name=f"more{n}.example",
            mail_hostname="mail.family.example",
            aliases_to=None,
            first_mailbox=f"user{n}",
            first_mailbox_password=PASSWORD,
        )
        domain.managers.add(owner)
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    assert len(many) == len(few)


def test_it_shows_a_models_own_actions_on_its_edit_page(client, owner, family, world):
    client.force_login(owner)
    mailbox = family.mailboxes.get(local_part="alice")
    page = client.get(reverse("gateway:mailbox-update", args=[mailbox.pk])).content.decode()
    assert (
        f'href="{reverse("gateway:mailbox-password", args=[mailbox.pk])}">Change password' in page
    )
    tunnel = world["tunnel"]
    page = client.get(reverse("hosts:tunnel-update", args=[tunnel.pk])).content.decode()
    assert f'action="{reverse("hosts:tunnel-rotate-keys", args=[tunnel.pk])}"' in page
    assert "Change password" not in page


def test_it_links_each_manageable_row_to_its_pages(client, owner, world):
    client.force_login(owner)
    page = client.get(reverse("hosts:host-list")).content.decode()
    vps = world["vps"].pk
    assert f'<a href="{reverse("hosts:host-update", args=[vps])}">Edit</a> ' in page
    assert f'<a href="{reverse("hosts:host-plan", args=[vps])}">Plan</a>' in page
