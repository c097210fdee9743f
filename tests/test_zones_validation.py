"""Bad DNS settings and push targets are refused, through the API and the pages, with nothing
saved: a control character in any text field, and values DNS cannot carry."""

import pytest
from django.urls import reverse

from tests.helpers import CONTROL_CHARACTERS, sweep
from tests.named import alice_once, carol_once, family_once  # noqa: F401 (fixtures, once)
from zones.models import PushTarget, ZoneSettings

SETTINGS_TEXT = ["dmarc_rua", "dmarc_ruf", "tlsrpt_rua", "spf_extra", "tlsa_digest"]
TARGET_TEXT = ["server", "tsig_key_name", "tsig_secret", "provider_username", "provider_token"]


def settings_payload(family) -> dict:
    return {
        "domain": family.pk,
        "ttl": 600,
        "nameservers": ["ns1.provider.example"],
        "dmarc_policy": "reject",
        "dmarc_rua": "dmarc@family.example",
        "dmarc_ruf": "ruf@family.example",
        "tlsrpt_rua": "tls@family.example",
        "mta_sts_mode": "enforce",
        "mta_sts_max_age": 86400,
        "spf_extra": "include:_spf.protonmail.ch",
        "tlsa_enabled": True,
        "tlsa_digest": "a" * 64,
    }


def target_payload(family) -> dict:
    return {
        "domain": family.pk,
        "kind": "rfc2136",
        "server": "192.0.2.53",
        "port": 53,
        "tsig_key_name": "mailgate",
        "tsig_secret": "c2VjcmV0",
        "provider_username": "joe",
        "provider_token": "token",
    }


def test_it_accepts_valid_settings_and_targets(api, alice, owner, family):
    response = api(alice).post("/api/dns-settings/", settings_payload(family), format="json")
    assert response.status_code == 201, response.json()
    # Where a zone is pushed is the owner's to say (tests/test_security_panel.py).
    response = api(owner).post("/api/dns-push-targets/", target_payload(family), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["tsig_secret_set"] is True and "tsig_secret" not in response.json()


@pytest.mark.parametrize("char", sweep(CONTROL_CHARACTERS), ids=repr)
@pytest.mark.parametrize("field", [*SETTINGS_TEXT, "nameservers"])
def test_it_refuses_a_control_character_in_the_settings(api, alice, family, field, char):
    payload = settings_payload(family)
    value = payload[field]
    payload[field] = [f"{value[0]}{char}x"] if isinstance(value, list) else f"{value}{char}x"
    response = api(alice).post("/api/dns-settings/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not ZoneSettings.objects.exists()


@pytest.mark.parametrize("char", sweep(CONTROL_CHARACTERS), ids=repr)
@pytest.mark.parametrize("field", TARGET_TEXT)
def test_it_refuses_a_control_character_in_a_push_target(api, alice, family, field, char):
    payload = {**target_payload(family), field: f"{target_payload(family)[field]}{char}x"}
    response = api(alice).post("/api/dns-push-targets/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not PushTarget.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("spf_extra", "+all"),
        ("spf_extra", "include:x.example ~all"),
        ("tlsa_digest", "not-hex"),
        ("dmarc_rua", "not an address"),
        ("nameservers", ["ns1 .example"]),
        ("ttl", 5),
        ("mta_sts_max_age", 40_000_000),
    ],
)
def test_it_refuses_settings_dns_cannot_carry(api, alice, family, field, value):
    payload = {**settings_payload(family), field: value}
    response = api(alice).post("/api/dns-settings/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_it_wants_a_certificate_or_digest_for_tlsa(api, alice, family):
    payload = {**settings_payload(family), "tlsa_digest": ""}
    response = api(alice).post("/api/dns-settings/", payload, format="json")
    assert response.status_code == 400
    assert "tlsa_certificate" in response.json()["errors"]


def test_it_wants_an_address_for_the_update_server(api, alice, family):
    payload = {**target_payload(family), "server": "ns1.provider.example"}
    response = api(alice).post("/api/dns-push-targets/", payload, format="json")
    assert response.status_code == 400
    assert "server" in response.json()["errors"]


def test_the_settings_page_refuses_a_control_character(client, alice, family):
    client.force_login(alice)
    payload = {**settings_payload(family), "spf_extra": "a:x.example\nevil", "nameservers": ""}
    response = client.post(reverse("zones:dns-settings", args=[family.pk]), payload)
    assert response.status_code == 200
    assert "spf_extra" in response.context["form"].errors
    assert not ZoneSettings.objects.exists()


def test_it_keeps_the_tsig_secret_and_token_encrypted_and_out_of_the_change_log(api, owner, family):
    from auditlog.models import LogEntry
    from django.db import connection

    secret, token = "dHNpZy1zZWNyZXQtdmFsdWU=", "provider-token-value"
    payload = {**target_payload(family), "tsig_secret": secret, "provider_token": token}
    assert api(owner).post("/api/dns-push-targets/", payload, format="json").status_code == 201
    with connection.cursor() as cursor:
        cursor.execute("SELECT tsig_secret, provider_token FROM zones_pushtarget")
        stored = cursor.fetchone()
    assert all(value.startswith("gAAAAA") for value in stored)
    assert secret not in str(stored) and token not in str(stored)
    logged = " ".join(str(entry.changes) for entry in LogEntry.objects.all())
    assert secret not in logged and token not in logged
    assert PushTarget.objects.get().tsig_secret == secret
