"""A mailbox's own settings (docs/mailbox-features.md): forwarding, auto-reply, spam and which
protocols may log in, changed by the owner, the domain's managers and the mailbox's own user,
through the API and the settings page alike; bad input is refused with a clear message and nothing
is saved."""

import pytest
from auditlog.models import LogEntry
from django.urls import reverse

from gateway.models import Alias, Mailbox
from tests.helpers import CONTROL_CHARACTERS

SETTINGS = {
    "forward_to": ["Alice@Example.org", "bob@other.example"],
    "forward_keep_copy": False,
    "autoreply_enabled": True,
    "autoreply_subject": "Away until Monday",
    "autoreply_body": 'Back on Monday.\n  C. "the cat" \\ out ${x}',
    "autoreply_start": "2026-12-24",
    "autoreply_end": "2027-01-02",
    "spam_enabled": False,
    "spam_threshold": 60,
    "imap_enabled": False,
    "pop3_enabled": False,
    "smtp_enabled": False,
}


def carols(family) -> Mailbox:
    return family.mailboxes.get(local_part="carol")


def url(mailbox) -> str:
    return f"/api/mailboxes/{mailbox.pk}/"


@pytest.mark.parametrize("who", ["owner", "alice", "carol"])
def test_it_lets_the_owner_the_manager_and_the_mailboxs_user_change_its_settings(
    request, api, family, who
):
    mailbox = carols(family)
    response = api(request.getfixturevalue(who)).patch(url(mailbox), SETTINGS, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["forward_to"] == ["alice@example.org", "bob@other.example"]
    assert {name: data[name] for name in SETTINGS if name != "forward_to"} == {
        name: value for name, value in SETTINGS.items() if name != "forward_to"
    }
    assert data["quota_used_bytes"] is None
    mailbox.refresh_from_db()
    assert mailbox.autoreply_body == SETTINGS["autoreply_body"]
    assert not mailbox.imap_enabled


def test_it_lets_the_mailboxs_user_change_nothing_else(api, carol, family):
    mailbox = carols(family)
    client = api(carol)
    for change in ({"quota_mb": 1}, {"enabled": False}, {"local_part": "caroline"}):
        response = client.patch(url(mailbox), change, format="json")
        assert response.status_code == 400, response.json()
        assert response.json()["errors"][next(iter(change))] == [
            "Only the domain's managers change this."
        ]
    response = client.patch(url(mailbox), {"quota_mb": 0, "pop3_enabled": False}, format="json")
    assert response.status_code == 200, response.json()  # an unchanged value is no change
    mailbox.refresh_from_db()
    assert (mailbox.quota_mb, mailbox.enabled, mailbox.pop3_enabled) == (0, True, False)
    alice = family.mailboxes.get(local_part="alice")
    assert client.patch(url(alice), {"pop3_enabled": False}).status_code == 404


def test_it_refuses_quota_used_bytes_as_input(api, alice, family):
    mailbox = carols(family)
    api(alice).patch(url(mailbox), {"quota_used_bytes": 5}, format="json")
    mailbox.refresh_from_db()
    assert mailbox.quota_used_bytes is None


BAD = {
    "a forward to the mailbox itself": (
        {"forward_to": ["Carol@family.example"]},
        "forward_to",
        "A mailbox cannot forward to itself; keep a copy here instead.",
    ),
    "an invalid address": (
        {"forward_to": ["not an address"]},
        "forward_to",
        "not an address is not a mail address (local@domain).",
    ),
    "an address twice": (
        {"forward_to": ["x@example.org", "X@example.org"]},
        "forward_to",
        "A destination is listed twice.",
    ),
    "an end before the start": (
        {"autoreply_start": "2027-01-02", "autoreply_end": "2026-12-24"},
        "autoreply_end",
        "The last day of the auto-reply is before its first day.",
    ),
    "an auto-reply without a text": (
        {"autoreply_enabled": True, "autoreply_subject": "Away"},
        "autoreply_body",
        "An auto-reply needs a subject and a text.",
    ),
    "a newline in the subject": (
        {"autoreply_subject": "Away\nBcc: x@example.org"},
        "autoreply_subject",
        "This value must be on one line, without control characters (found '\\n').",
    ),
    "a threshold over 100": (
        {"spam_threshold": 101},
        "spam_threshold",
        "Ensure this value is less than or equal to 100.",
    ),
}


@pytest.mark.parametrize(("change", "field", "message"), BAD.values(), ids=BAD.keys())
def test_it_refuses_bad_settings_and_saves_nothing(api, alice, family, change, field, message):
    mailbox = carols(family)
    before = Mailbox.objects.filter(pk=mailbox.pk).values().get()
    response = api(alice).patch(url(mailbox), change, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["errors"][field] == [message]
    assert Mailbox.objects.filter(pk=mailbox.pk).values().get() == before


@pytest.mark.parametrize(
    "char", [c for c in CONTROL_CHARACTERS if c not in "\r\n"] + ["\t", "\x85"]
)
def test_it_refuses_a_control_character_in_the_auto_reply_text(api, alice, family, char):
    mailbox = carols(family)
    response = api(alice).patch(url(mailbox), {"autoreply_body": f"Away{char}."}, format="json")
    assert response.status_code == 400
    assert "control characters" in response.json()["errors"]["autoreply_body"][0]


def test_it_keeps_the_lines_of_the_text_with_one_line_ending(api, alice, family):
    mailbox = carols(family)
    body = "Away.\r\nBack soon.\rC."
    assert api(alice).patch(url(mailbox), {"autoreply_body": body}).status_code == 200
    mailbox.refresh_from_db()
    assert mailbox.autoreply_body == "Away.\nBack soon.\nC."


def test_it_refuses_a_loop_through_aliases_and_forwards(api, alice, family):
    """carol forwards to team (an alias of alice); alice may not forward to an unknown address,
    which the catch-all sends to carol, nor to carol; nor carol to an alias of her own."""
    Alias.objects.create(domain=family, local_part="team", destinations=["alice@family.example"])
    Alias.objects.create(domain=family, local_part="", destinations=["carol@family.example"])
    client = api(alice)
    carol_box, alice_box = carols(family), family.mailboxes.get(local_part="alice")
    assert client.patch(url(carol_box), {"forward_to": ["team@family.example"]}).status_code == 200
    response = client.patch(url(alice_box), {"forward_to": ["nobody@family.example"]})
    assert response.status_code == 400, response.json()
    assert response.json()["errors"]["forward_to"] == [
        "This makes a loop, mail would go round forever: alice@family.example → "
        "nobody@family.example → carol@family.example → team@family.example → "
        "alice@family.example."
    ]
    response = client.patch(url(alice_box), {"forward_to": ["carol@family.example"]})
    assert "This makes a loop" in response.json()["errors"]["forward_to"][0]
    response = client.post(
        "/api/aliases/",
        {"domain": family.pk, "local_part": "x", "destinations": ["carol@family.example"]},
    )
    assert response.status_code == 201
    response = client.patch(url(carol_box), {"forward_to": ["x@family.example"]})
    assert response.json()["errors"]["forward_to"] == [
        "This makes a loop, mail would go round forever: carol@family.example → "
        "x@family.example → carol@family.example."
    ]
    response = client.patch(
        f"/api/aliases/{family.aliases.get(local_part='team').pk}/",
        {"destinations": ["carol@family.example"]},
    )
    assert "This makes a loop" in response.json()["errors"]["destinations"][0]
    assert carols(family).forward_to == ["team@family.example"]
    assert family.mailboxes.get(local_part="alice").forward_to == []


def test_the_settings_page_saves_for_the_mailboxs_user_and_logs_the_change(client, carol, family):
    mailbox = carols(family)
    client.force_login(carol)
    page = reverse("gateway:mailbox-settings", args=[mailbox.pk])
    assert "Forward every message" in client.get(page).content.decode()
    form = {
        "forward_to": "x@example.org\n y@example.org ",
        "forward_keep_copy": "on",
        "autoreply_subject": "",
        "autoreply_body": "",
        "spam_enabled": "on",
        "spam_threshold": "70",
        "imap_enabled": "on",
        "smtp_enabled": "on",
    }
    assert client.post(page, form).status_code == 302
    mailbox.refresh_from_db()
    assert mailbox.forward_to == ["x@example.org", "y@example.org"]
    assert (mailbox.pop3_enabled, mailbox.spam_threshold) == (False, 70)
    update = LogEntry.objects.get_for_object(mailbox).get(action=LogEntry.Action.UPDATE)
    assert update.actor == carol
    assert update.changes_dict["pop3_enabled"] == ["True", "False"]


def test_the_settings_page_refuses_a_loop_and_saves_nothing(client, carol, family):
    client.force_login(carol)
    mailbox = carols(family)
    page = reverse("gateway:mailbox-settings", args=[mailbox.pk])
    form = {"forward_to": "carol@family.example", "spam_threshold": "80"}
    response = client.post(page, form)
    assert response.status_code == 200
    assert "A mailbox cannot forward to itself" in response.content.decode()
    assert carols(family).forward_to == []


def test_the_settings_page_is_nobody_elses(client, bob, family):
    client.force_login(bob)
    page = reverse("gateway:mailbox-settings", args=[carols(family).pk])
    assert client.get(page).status_code == 404
