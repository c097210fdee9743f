"""Device passwords (docs/mailbox-features.md): a mailbox's user makes a named password for one
device, shown once and kept only as a hash that Dovecot verifies (``doveadm pw -t``), listed with
its last use and revoked; nobody else's, never in the change log, never returned again."""

import subprocess

import pytest
from auditlog.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from gateway.models import AppPassword


def carols(family):
    return family.mailboxes.get(local_part="carol")


def dovecot_accepts(hashed: str, password: str) -> bool:
    result = subprocess.run(
        ["doveadm", "pw", "-t", hashed, "-p", password], capture_output=True, text=True
    )
    return result.returncode == 0 and "(verified)" in result.stdout


def test_it_makes_a_password_shown_once_that_dovecot_verifies(api, carol, family):
    client = api(carol)
    response = client.post("/api/app-passwords/", {"mailbox": carols(family).pk, "name": "Phone"})
    assert response.status_code == 201, response.json()
    made = response.json()
    password = made.pop("password")
    assert len(password) == 32 and set(password) <= set("0123456789abcdef")
    assert made["name"] == "Phone" and made["last_used_at"] is None
    row = AppPassword.objects.get(pk=made["id"])
    assert row.password_hash.startswith("{SHA256-CRYPT}$5$")
    assert password not in row.password_hash
    assert dovecot_accepts(row.password_hash, password)
    assert not dovecot_accepts(row.password_hash, "0" * 32)
    listed = client.get("/api/app-passwords/").json()["results"]
    assert listed == [made]
    assert "password" not in client.get(f"/api/app-passwords/{row.pk}/").json()
    entry = LogEntry.objects.get_for_object(row).get()
    assert entry.changes_dict["password_hash"] == ["(empty)", "(set)"]


def test_it_lets_the_manager_see_and_revoke_but_nobody_else(api, alice, bob, carol, family):
    row, _ = AppPassword.issue(mailbox=carols(family), name="Laptop")
    assert api(bob).get("/api/app-passwords/").json()["results"] == []
    assert api(bob).delete(f"/api/app-passwords/{row.pk}/").status_code == 404
    response = api(bob).post("/api/app-passwords/", {"mailbox": carols(family).pk, "name": "x"})
    assert response.status_code == 400
    assert [r["name"] for r in api(alice).get("/api/app-passwords/").json()["results"]] == [
        "Laptop"
    ]
    assert api(alice).delete(f"/api/app-passwords/{row.pk}/").status_code == 204
    assert not AppPassword.objects.exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Phone\nline", "This value must be on one line"),
        ("Laptop", "App password with this Mailbox and Name already exists."),
    ],
)
def test_it_refuses_a_bad_or_repeated_name(api, carol, family, name, message):
    AppPassword.issue(mailbox=carols(family), name="Laptop")
    response = api(carol).post("/api/app-passwords/", {"mailbox": carols(family).pk, "name": name})
    assert response.status_code == 400
    assert message in str(response.json()["errors"])
    assert AppPassword.objects.count() == 1


def test_it_refuses_more_than_the_most_a_mailbox_may_have(api, carol, family, monkeypatch):
    monkeypatch.setattr(AppPassword, "MAX_PER_MAILBOX", 1)
    client = api(carol)
    made = client.post("/api/app-passwords/", {"mailbox": carols(family).pk, "name": "a"})
    assert made.status_code == 201
    response = client.post("/api/app-passwords/", {"mailbox": carols(family).pk, "name": "b"})
    assert response.status_code == 400
    assert "at most 1 device passwords" in str(response.json()["errors"])


def test_the_page_shows_the_password_once_and_revokes(client, carol, family):
    client.force_login(carol)
    page = reverse("gateway:app-passwords", args=[carols(family).pk])
    shown = client.post(page, {"name": "Phone"}).content.decode()
    row = AppPassword.objects.get()
    secret = shown.split('<code class="secret">')[1].split("</code>")[0]
    assert dovecot_accepts(row.password_hash, secret)
    again = client.get(page).content.decode()
    assert "Phone" in again and secret not in again
    assert client.post(page, {"revoke": str(row.pk)}).status_code == 302
    assert not AppPassword.objects.exists()
    assert client.post(page, {"revoke": "x"}).status_code == 400


def test_the_list_costs_the_same_queries_for_any_number(api, alice, family):
    client = api(alice)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/app-passwords/").status_code == 200
        return len(captured)

    AppPassword.issue(mailbox=carols(family), name="first")
    few = queries()
    for number in range(10):
        AppPassword.issue(mailbox=carols(family), name=f"device {number}")
    assert queries() == few
