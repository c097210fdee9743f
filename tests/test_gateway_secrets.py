"""Secrets at rest: the database holds only ciphertext, and no page, API answer, log line, SQL
statement or change-log entry carries a secret. Keys rotate without losing a value."""

import logging

import pytest
from auditlog.models import LogEntry
from cryptography.fernet import Fernet
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from gateway.models import ApiToken
from gateway.secrets import secrets_rotate
from hosts import wireguard
from hosts.models import Host, Relay, Tunnel, TunnelPeer
from tests.world import ssh_host_key, ssh_private_key
from zones.models import DkimKey

RELAY_PASSWORD = "relay-password-Zq81"


@pytest.fixture
def secrets_made_through_the_api(api, owner, family, caplog):
    """Every kind of secret, entered through the API while every log and query is captured."""
    caplog.set_level(logging.DEBUG)
    made = {"ssh": ssh_private_key(), "hub": wireguard.generate_private_key()}
    made["peer"] = wireguard.generate_private_key()
    client = api(owner)
    with CaptureQueriesContext(connection) as queries:
        relay = client.post(
            "/api/relays/",
            {"name": "bridge", "username": "joe@proton.me", "password": RELAY_PASSWORD},
            format="json",
        ).json()
        vps = client.post(
            "/api/hosts/",
            {
                "name": "vps",
                "is_gateway": True,
                "gateway_proxy": "haproxy",
                "ssh_address": "198.51.100.1",
                "ssh_private_key": made["ssh"],
                "ssh_host_key": ssh_host_key(),
                "public_ipv4": "198.51.100.1",
                "tunnel_address": "10.8.0.1",
            },
            format="json",
        ).json()
        home = client.post(
            "/api/hosts/",
            {
                "name": "home",
                "is_mailserver": True,
                "mail_backend": "postfix-dovecot",
                "ssh_address": "198.51.100.2",
                "tunnel_address": "10.8.0.2",
                "relay": relay["id"],
            },
            format="json",
        ).json()
        tunnel = client.post(
            "/api/tunnels/", {"hub": vps["id"], "hub_private_key": made["hub"]}, format="json"
        ).json()
        client.post(
            "/api/tunnel-peers/",
            {"tunnel": tunnel["id"], "host": home["id"], "private_key": made["peer"]},
            format="json",
        )
        client.patch(f"/api/relays/{relay['id']}/", {"password": RELAY_PASSWORD + "2"})
    made["dkim"] = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END"
    DkimKey.objects.create(domain=family, private_key=made["dkim"], public_key="MIIB")
    made["relay"] = RELAY_PASSWORD
    made["relay2"] = RELAY_PASSWORD + "2"
    made["queries"] = " ".join(str(q["sql"]) for q in queries.captured_queries)
    return made


def fragments(made: dict) -> list[str]:
    """Distinctive pieces of each secret (a PEM header alone is no secret)."""
    ssh_body = made["ssh"].splitlines()[2]
    return [ssh_body, made["hub"][:20], made["peer"][:20], made["relay"], "MIIEvQIBADAN"]


def test_it_stores_only_ciphertext(secrets_made_through_the_api):
    columns = [
        (Host, "ssh_private_key"),
        (Relay, "password"),
        (Tunnel, "hub_private_key"),
        (TunnelPeer, "private_key"),
        (DkimKey, "private_key"),
    ]
    with connection.cursor() as cursor:
        for model, column in columns:
            cursor.execute(
                f"SELECT {column} FROM {model._meta.db_table} WHERE {column} <> ''"  # noqa: S608
            )
            raw = [row[0] for row in cursor.fetchall()]
            assert raw, f"no {model.__name__}.{column} stored"
            for value in raw:
                assert value.startswith("gAAAAA"), f"{model.__name__}.{column} is not a token"
                for fragment in fragments(secrets_made_through_the_api):
                    assert fragment not in value


def test_it_returns_no_secret_from_the_api(api, owner, secrets_made_through_the_api):
    client = api(owner)
    answers = ""
    for route in ["hosts", "relays", "tunnels", "tunnel-peers"]:
        listing = client.get(f"/api/{route}/")
        answers += listing.content.decode()
        for row in listing.json()["results"]:
            answers += client.get(f"/api/{route}/{row['id']}/").content.decode()
    for fragment in fragments(secrets_made_through_the_api):
        assert fragment not in answers
    assert '"ssh_private_key_set":true' in answers
    assert '"password_set":true' in answers


def test_it_logs_no_secret(caplog, secrets_made_through_the_api):
    logged = caplog.text + secrets_made_through_the_api["queries"]
    for fragment in fragments(secrets_made_through_the_api):
        assert fragment not in logged


def test_it_censors_secrets_in_the_change_log(secrets_made_through_the_api):
    entries = LogEntry.objects.all()
    recorded = " ".join(str(entry.changes) for entry in entries)
    for fragment in fragments(secrets_made_through_the_api):
        assert fragment not in recorded
    relay_update = entries.get(action=LogEntry.Action.UPDATE, content_type__model="relay")
    assert relay_update.changes_dict["password"] == ["(set)", "(set)"]


def test_it_never_shows_a_stored_secret_on_a_page(client, owner, secrets_made_through_the_api):
    client.force_login(owner)
    for model, url_name in [(Host, "hosts:host-update"), (Relay, "hosts:relay-update")]:
        for row in model.objects.all():
            page = client.get(reverse(url_name, args=[row.pk])).content.decode()
            for fragment in fragments(secrets_made_through_the_api):
                assert fragment not in page
    relay = Relay.objects.get()
    page = client.get(reverse("hosts:relay-update", args=[relay.pk])).content.decode()
    assert "Set. Leave empty to keep it, or enter a new value to replace it." in page


def test_it_keeps_a_secret_left_empty_and_replaces_one_typed(client, owner):
    relay = Relay.objects.create(name="bridge", username="joe@proton.me", password="first-pass")
    client.force_login(owner)
    form = {
        "name": "bridge",
        "kind": "proton-bridge",
        "host": "127.0.0.1",
        "port": 1025,
        "username": "joe@proton.me",
        "tls_level": "encrypt",
        "password": "",
    }
    assert client.post(reverse("hosts:relay-update", args=[relay.pk]), form).status_code == 302
    relay.refresh_from_db()
    assert relay.password == "first-pass"
    form["password"] = "second-pass"
    assert client.post(reverse("hosts:relay-update", args=[relay.pk]), form).status_code == 302
    relay.refresh_from_db()
    assert relay.password == "second-pass"


def test_it_rotates_the_encryption_key(settings, db):
    old, new = settings.MAILGATE_ENCRYPTION_KEYS[0], Fernet.generate_key().decode()
    relay = Relay.objects.create(name="bridge", username="joe@proton.me", password="keep-me")
    settings.MAILGATE_ENCRYPTION_KEYS = [new, old]
    assert secrets_rotate() >= 1
    settings.MAILGATE_ENCRYPTION_KEYS = [new]
    assert Relay.objects.get(pk=relay.pk).password == "keep-me"


def test_it_stores_api_tokens_as_digests_only(owner):
    row, token = ApiToken.issue(user=owner, name="script")
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM gateway_apitoken")
        stored = " ".join(str(value) for value in cursor.fetchone())
    assert token not in stored
    assert token[len(ApiToken.PREFIX) + 8 :] not in stored
    assert row.hint == token[:8]
