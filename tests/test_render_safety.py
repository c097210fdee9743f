"""Whatever is in the database, no value carries a line break or control character into a
rendered file: a poisoned row (written past the validators, as a bug or a hand edit could)
makes rendering stop with a RenderError, and every file says who manages it."""

import pytest
from django.db import models

from gateway.bundle import RenderError
from gateway.models import Alias, Domain, Mailbox
from hosts.models import Host, Relay, Tunnel, TunnelPeer
from hosts.render import render_hosts
from tests import named
from tests.helpers import sweep
from tests.world import build_infrastructure
from zones import services as zones_services
from zones.models import DkimKey

MARKER = "§§"  # short, for choice fields of 10 characters, and found nowhere else
MODELS = (Domain, Mailbox, Alias, Host, Relay, Tunnel, TunnelPeer, DkimKey)
TEXT_FIELDS = [
    (model, field.name)
    for model in MODELS
    for field in model._meta.concrete_fields
    if isinstance(field, models.CharField | models.TextField | models.JSONField)
]


@pytest.fixture
def world(db, saved_world):
    return saved_world


@pytest.fixture(scope="module")
def saved_world(module_transaction):
    """Every renderer has a host: the all-HAProxy vps with a Postfix + Dovecot home and a
    relay (from tests.world), plus a Traefik gateway with a Mailu spoke. Written once: each
    test poisons rows in its own transaction, which rolls back."""
    family = named.family(named.user("alice"), named.user("carol"))
    other = named.other(named.user("bob"))
    infrastructure = build_infrastructure()
    Host.objects.filter(name="spare").update(relay=infrastructure["relay"])
    edge = Host.objects.create(
        name="edge",
        is_gateway=True,
        gateway_proxy="traefik-haproxy",
        ssh_address="203.0.113.9",
        public_ipv4="203.0.113.9",
        tunnel_address="10.9.0.1",
        acme_email="owner@family.example",
        cloudflare_api_token="cf-token",
    )
    nas = Host.objects.create(
        name="nas",
        is_mailserver=True,
        mail_backend="mailu",
        ssh_address="192.168.1.20",
        tunnel_address="10.9.0.2",
    )
    tunnel = Tunnel.objects.create(interface="wg1", hub=edge, subnet="10.9.0.0/24")
    TunnelPeer.objects.create(tunnel=tunnel, host=nas, routed_subnet="192.168.203.0/24")
    for domain in (family, other):  # the mail servers' signers: OpenDKIM, rspamd
        zones_services.dkim_key_generate(domain=domain)
    return infrastructure


def all_files():
    return [file for bundle in render_hosts(Host.objects.all()) for file in bundle.files]


# An auto-reply's text keeps its lines: inside a Sieve quoted string, escaped in JSON.
LINES_ALLOWED = {(Mailbox, "autoreply_body", "\n")}


def poisoned(value, char):
    if isinstance(value, list):
        return [f"{item}{char}{MARKER}" for item in value] or [f"x{char}{MARKER}"]
    return f"{value or 'x'}{char}{MARKER}"


def test_every_renderer_has_work_in_this_world(world):
    paths = {file.path for file in all_files()}
    for expected in (
        "/etc/postfix/main.cf",
        "/etc/dovecot/dovecot.conf",
        "/etc/haproxy/haproxy.cfg",
        "/opt/traefik/traefik-config/traefik.yml",
        "/opt/mailu/mailu.env",
        "/etc/nginx/conf.d/mailgate-wkd.conf",
        "/etc/wireguard/wg1.conf",
        "/usr/local/sbin/mailgate-smtp-egress",
        "/etc/systemd/system/protonmail-bridge.service",
        "/etc/opendkim.conf",
        "/mailu/overrides/rspamd/dkim_signing.conf",
    ):
        assert expected in paths


# NUL and U+2028 are left out: PostgreSQL refuses NUL in text, and the update bypasses the
# validators that refuse both (tests/test_gateway_validation.py sweeps them through forms and
# the API).
def poison_cases() -> list:
    """Each text field with each control character it must keep out of a file (a text of
    lines keeps its newlines: tests/test_render_mailbox_features.py), the first of each
    field's characters in the fast loop."""
    cases = []
    for model, field in TEXT_FIELDS:
        chars = [c for c in ("\n", "\r", "\x1b") if (model, field, c) not in LINES_ALLOWED]
        cases += sweep(
            chars,
            each=lambda c, m=model, f=field: pytest.param(m, f, c, id=f"{m.__name__}.{f}-{c!r}"),
        )
    return cases


@pytest.mark.parametrize(("model", "field", "char"), poison_cases())
def test_a_control_character_never_reaches_a_file(world, model, field, char):
    for row in model.objects.all():
        model.objects.filter(pk=row.pk).update(**{field: poisoned(getattr(row, field), char)})
    try:
        files = all_files()
    except RenderError as exc:
        assert str(exc), "a refusal says what to fix"
        return
    for file in files:
        assert MARKER.encode() not in file.content, f"{model.__name__}.{field} reached {file.path}"


def test_every_text_file_says_it_is_managed_by_mailgate(world):
    for file in all_files():
        if file.text is None or file.path.endswith(
            ("/secrets/cf_api_token", "/mta-sts.txt", ".private", ".key")
        ):
            continue  # binary keys, a token read whole by Traefik, the MTA-STS policy, whose
            # format (RFC 8461) has no comments, and DKIM private keys (PEM, read whole)
        head = file.text.splitlines()[:2]  # a script's shebang comes first
        assert any("Managed by Mailgate" in line for line in head), file.path
