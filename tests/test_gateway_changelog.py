"""The change log records every create, update and delete, from the pages, the API and a task,
with who did it and the values before and after."""

import pytest
from auditlog.models import LogEntry
from django.urls import reverse

from gateway.models import Alias, Mailbox
from hosts import tasks
from tests.world import build_infrastructure


def entries_for(obj):
    return LogEntry.objects.get_for_object(obj).order_by("timestamp")


def test_it_records_a_change_made_on_a_page(client, alice, family):
    client.force_login(alice)
    form = {
        "domain": family.pk,
        "local_part": "dave",
        "display_name": "Dave",
        "quota_mb": 0,
        "enabled": "on",
        "spam_threshold": 80,
        "password": "long enough password",
        "password_again": "long enough password",
    }
    assert client.post(reverse("gateway:mailbox-create"), form).status_code == 302
    dave = Mailbox.objects.get(local_part="dave")
    form.update(display_name="Dave Example", password="", password_again="")
    client.post(reverse("gateway:mailbox-update", args=[dave.pk]), form)
    created, updated = entries_for(dave)
    assert created.action == LogEntry.Action.CREATE
    assert created.actor == alice
    assert updated.actor == alice
    assert updated.changes_dict["display_name"] == ["Dave", "Dave Example"]
    assert created.changes_dict["password_hash"][1] == "(set)"


def test_it_records_the_api_client_as_the_actor(api, bob, other):
    alias = other.aliases.get(local_part="abuse")
    response = api(bob).patch(
        f"/api/aliases/{alias.pk}/", {"destinations": ["bob@other.example", "x@example.org"]}
    )
    assert response.status_code == 200, response.json()
    update = entries_for(alias).get(action=LogEntry.Action.UPDATE)
    assert update.actor == bob
    before, after = update.changes_dict["destinations"]
    assert "x@example.org" in after and "x@example.org" not in before


def test_it_records_a_delete(api, alice, family):
    alias = family.aliases.get(local_part="noc")
    assert api(alice).delete(f"/api/aliases/{alias.pk}/").status_code == 204
    deleted = LogEntry.objects.get(
        action=LogEntry.Action.DELETE, content_type__model="alias", object_pk=str(alias.pk)
    )
    assert deleted.actor == alice
    assert not Alias.objects.filter(pk=alias.pk).exists()


@pytest.mark.django_db
def test_it_records_a_change_made_by_a_task(owner):
    world = build_infrastructure()
    tunnel = world["tunnel"]
    old_public_key = tunnel.hub_public_key
    tasks.tunnel_rotate_keys.apply(args=[tunnel.pk, owner.pk]).get()
    tunnel.refresh_from_db()
    assert tunnel.hub_public_key != old_public_key
    update = entries_for(tunnel).get(action=LogEntry.Action.UPDATE)
    assert update.actor == owner
    assert update.changes_dict["hub_private_key"] == ["(set)", "(set)"]
