"""Bad input is refused with a clear message and nothing is saved: through the forms and the
API, for invalid names, addresses, networks and ports, and for a newline or control character in
every text field whose value can reach a configuration file."""

import pytest
from django.urls import reverse

from gateway.models import Alias, Domain, Mailbox
from hosts.models import Host, Relay, Tunnel, TunnelPeer
from tests import named
from tests.helpers import CONTROL_CHARACTERS, sweep
from tests.named import PASSWORD
from tests.world import build_infrastructure, ssh_host_key, ssh_private_key


def domain_payload(world):
    return (
        Domain,
        "gateway:domain-create",
        "/api/domains/",
        {
            "name": "new.example",
            "mail_hostname": "mail.new.example",
            "enabled": True,
            "first_mailbox": "joe",
            "first_mailbox_password": PASSWORD,
        },
    )


def mailbox_payload(world):
    return (
        Mailbox,
        "gateway:mailbox-create",
        "/api/mailboxes/",
        {
            "domain": world["family"].pk,
            "local_part": "dave",
            "display_name": "Dave Example",
            "quota_mb": 100,
            "enabled": True,
            "spam_threshold": 80,
            "password": PASSWORD,
        },
    )


def alias_payload(world):
    return (
        Alias,
        "gateway:alias-create",
        "/api/aliases/",
        {
            "domain": world["family"].pk,
            "local_part": "team",
            "destinations": ["alice@family.example", "carol@family.example"],
            "allowed_as_sender": True,
            "enabled": True,
        },
    )


def host_payload(world):
    return (
        Host,
        "hosts:host-create",
        "/api/hosts/",
        {
            "name": "vps2",
            "is_gateway": True,
            "ssh_address": "vps2.family.example",
            "ssh_port": 2222,
            "ssh_user": "deploy",
            "ssh_private_key": ssh_private_key(),
            "ssh_host_key": ssh_host_key(),
            "public_ipv4": "203.0.113.7",
            "public_ipv6": "2001:db8::7",
            "tunnel_address": "10.8.0.9",
            "fqdn": "mail.family.example",
            "tls_certificate_path": "/etc/ssl/mail/fullchain.pem",
            "tls_key_path": "/etc/ssl/mail/privkey.pem",
            "lan_networks": ["192.168.1.0/24", "fd00::/64"],
            "wan_interface": "ens3",
            "acme_email": "owner@family.example",
            "cloudflare_api_token": "cf-token-value",
            "mailu_secret_key": "0123456789abcdef0123456789abcdef",
            "gateway_proxy": "traefik-haproxy",
            "apply_changes": "approval",
        },
    )


def relay_payload(world):
    return (
        Relay,
        "hosts:relay-create",
        "/api/relays/",
        {
            "name": "provider",
            "kind": "generic",
            "host": "smtp.provider.example",
            "port": 587,
            "username": "family@provider.example",
            "password": "s3cret-relay-pass",
            "tls_level": "secure",
            "rewrite_sender_to": "family@provider.example",
        },
    )


def tunnel_payload(world):
    return (
        Tunnel,
        "hosts:tunnel-create",
        "/api/tunnels/",
        {
            "interface": "wg1",
            "hub": world["vps"].pk,
            "listen_port": 51821,
            "subnet": "10.8.0.0/24",
            "mtu": 1380,
            "hub_private_key": world["wireguard_key"],
        },
    )


def peer_payload(world):
    return (
        TunnelPeer,
        "hosts:tunnelpeer-create",
        "/api/tunnel-peers/",
        {
            "tunnel": world["tunnel"].pk,
            "host": world["spare"].pk,
            "private_key": world["wireguard_key"],
            "routed_subnet": "172.20.0.0/16",
            "keepalive": 25,
            "egress_via_hub": True,
        },
    )


PAYLOADS = [
    domain_payload,
    mailbox_payload,
    alias_payload,
    host_payload,
    relay_payload,
    tunnel_payload,
    peer_payload,
]


def text_fields(payload_fn) -> list[tuple]:
    _, _, _, payload = payload_fn(_FAKE_WORLD)
    names = [name for name, value in payload.items() if isinstance(value, (str, list))]
    return [(payload_fn, name) for name in names]


class _Anything(dict):
    def __missing__(self, key):
        return type("Row", (), {"pk": 1})()


_FAKE_WORLD = _Anything(wireguard_key="x")


def as_form_data(payload: dict, model) -> dict:
    data = {}
    for name, value in payload.items():
        if value is True:
            data[name] = "on"
        elif value is False:
            continue
        elif isinstance(value, list):
            data[name] = "\n".join(value)
        else:
            data[name] = value
    if model is Mailbox and "password" in data:
        data["password_again"] = data["password"]
    return data


def poisoned(value, char):
    if isinstance(value, list):
        return [value[0] + char + "x = y", *value[1:]]
    return value + char + "x = y"


@pytest.fixture(scope="module")
def saved_world(module_transaction):
    """The owner, family.example and the infrastructure, written once: each test changes only
    what its own transaction rolls back."""
    family = named.family(named.user("alice"), named.user("carol"))
    return {"owner": named.owner(), "family": family, **build_infrastructure()}


@pytest.fixture
def owner(db, saved_world):
    return named.fresh(saved_world["owner"])


@pytest.fixture
def world(db, saved_world):
    return {name: named.fresh(value) for name, value in saved_world.items() if name != "owner"}


@pytest.mark.parametrize("payload_fn", PAYLOADS, ids=lambda fn: fn.__name__)
def test_it_accepts_the_valid_payload_in_a_form(client, owner, world, payload_fn):
    model, url_name, _, payload = payload_fn(world)
    client.force_login(owner)
    before = model.objects.count()
    response = client.post(reverse(url_name), as_form_data(payload, model))
    assert response.status_code == 302, response.context["form"].errors
    assert model.objects.count() == before + 1


@pytest.mark.parametrize("payload_fn", PAYLOADS, ids=lambda fn: fn.__name__)
def test_it_accepts_the_valid_payload_in_the_api(api, owner, world, payload_fn):
    model, _, url, payload = payload_fn(world)
    before = model.objects.count()
    response = api(owner).post(url, payload, format="json")
    assert response.status_code == 201, response.json()
    assert model.objects.count() == before + 1


FIELD_CASES = [case for fn in PAYLOADS for case in text_fields(fn)]
FIELD_IDS = [f"{fn.__name__.removesuffix('_payload')}.{name}" for fn, name in FIELD_CASES]


@pytest.mark.parametrize("char", sweep(CONTROL_CHARACTERS), ids=repr)
@pytest.mark.parametrize(("payload_fn", "field"), FIELD_CASES, ids=FIELD_IDS)
def test_it_refuses_a_control_character_in_a_form(client, owner, world, payload_fn, field, char):
    model, url_name, _, payload = payload_fn(world)
    payload[field] = poisoned(payload[field], char)
    client.force_login(owner)
    before = model.objects.count()
    response = client.post(reverse(url_name), as_form_data(payload, model))
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert model.objects.count() == before


@pytest.mark.parametrize("char", sweep(CONTROL_CHARACTERS), ids=repr)
@pytest.mark.parametrize(("payload_fn", "field"), FIELD_CASES, ids=FIELD_IDS)
def test_it_refuses_a_control_character_in_the_api(api, owner, world, payload_fn, field, char):
    model, _, url, payload = payload_fn(world)
    payload[field] = poisoned(payload[field], char)
    before = model.objects.count()
    response = api(owner).post(url, payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert model.objects.count() == before


BAD_VALUES = [
    (domain_payload, "name", "no_dot", "fully qualified"),
    (domain_payload, "name", "-bad-.example", "not a valid domain"),
    (domain_payload, "name", "a..example", "not a valid domain"),
    (domain_payload, "name", "192.0.2.1", "an address"),
    (domain_payload, "mail_hostname", "under_score.example", "not a valid domain"),
    (domain_payload, "first_mailbox", "two words", "not a valid local part"),
    (mailbox_payload, "local_part", "dave..x", "not a valid local part"),
    (mailbox_payload, "local_part", ".dave", "not a valid local part"),
    (mailbox_payload, "local_part", "d@ve", "not a valid local part"),
    (mailbox_payload, "local_part", "x" * 65, "64 characters"),
    (mailbox_payload, "local_part", "postmaster", "alias with this address"),
    (mailbox_payload, "password", "ü" * 37, "at most 72 bytes"),
    (alias_payload, "destinations", ["not-an-address"], "not a mail address"),
    (alias_payload, "destinations", ["x@nodot"], "fully qualified"),
    (alias_payload, "local_part", "alice", "mailbox with this address"),
    (host_payload, "ssh_port", 70000, "65535"),
    (host_payload, "ssh_port", 0, "65535"),
    (host_payload, "public_ipv4", "203.0.113.300", "IPv4"),
    (host_payload, "ssh_host_key", "ssh-ed25519 AAAA host comment", "one line"),
    (host_payload, "ssh_private_key", "not a key", "private key"),
    (host_payload, "lan_networks", ["192.168.1.1/24"], "host bits set"),
    (host_payload, "tls_certificate_path", "relative/cert.pem", "absolute file path"),
    (host_payload, "tls_key_path", "/etc/ssl/../shadow", "absolute file path"),
    (host_payload, "fqdn", "mail_host.example", "not a valid domain"),
    (host_payload, "wan_interface", "eth0; reboot", "interface name"),
    (relay_payload, "rewrite_sender_to", "not-an-address", "not a mail address"),
    (relay_payload, "port", 99999, "65535"),
    (relay_payload, "tls_certificate", "-----BEGIN CERTIFICATE-----\nxx", "certificate"),
    (tunnel_payload, "subnet", "10.8.0.1/24", "host bits set"),
    (tunnel_payload, "subnet", "10.8.0.0/33", "CIDR"),
    (tunnel_payload, "subnet", "10.9.0.0/24", "outside"),
    (tunnel_payload, "listen_port", 65536, "65535"),
    (tunnel_payload, "hub_private_key", "too-short=", "WireGuard key"),
    (peer_payload, "routed_subnet", "10.8.0.0/16", "overlaps"),
    (peer_payload, "routed_subnet", "192.168.203.0/33", "CIDR"),
]
BAD_IDS = [
    f"{fn.__name__.removesuffix('_payload')}.{field}={value!r}"[:60]
    for fn, field, value, _ in BAD_VALUES
]


@pytest.mark.parametrize(("payload_fn", "field", "value", "message"), BAD_VALUES, ids=BAD_IDS)
def test_it_explains_what_is_wrong_in_a_form(
    client, owner, world, payload_fn, field, value, message
):
    model, url_name, _, payload = payload_fn(world)
    payload[field] = value
    client.force_login(owner)
    before = model.objects.count()
    response = client.post(reverse(url_name), as_form_data(payload, model))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert message in " ".join(errors.get(field, []) + errors.get("__all__", []))
    assert model.objects.count() == before


@pytest.mark.parametrize(("payload_fn", "field", "value", "message"), BAD_VALUES, ids=BAD_IDS)
def test_it_explains_what_is_wrong_in_the_api(api, owner, world, payload_fn, field, value, message):
    model, _, url, payload = payload_fn(world)
    payload[field] = value
    before = model.objects.count()
    response = api(owner).post(url, payload, format="json")
    assert response.status_code == 400
    assert message in str(response.json())
    assert model.objects.count() == before


ONE_OF_THE_TWO = (
    "Choose the mailbox that receives abuse@, postmaster@ and the other standard aliases, or "
    "name a first mailbox to create in this domain (one of the two)."
)


@pytest.mark.parametrize("both", [True, False], ids=["both", "neither"])
def test_the_form_and_the_api_refuse_both_or_neither_alias_target_alike(
    client, api, owner, world, both
):
    _, url_name, url, payload = domain_payload(world)
    if both:
        payload["aliases_to"] = world["family"].mailboxes.get(local_part="alice").pk
    else:
        del payload["first_mailbox"], payload["first_mailbox_password"]
    response = api(owner).post(url, payload, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"aliases_to": [ONE_OF_THE_TWO]}
    client.force_login(owner)
    response = client.post(reverse(url_name), as_form_data(payload, Domain))
    assert response.status_code == 200
    assert response.context["form"].errors == {"aliases_to": [ONE_OF_THE_TWO]}
    assert not Domain.objects.filter(name=payload["name"]).exists()


def test_the_form_and_the_api_refuse_a_new_mailbox_without_a_password_alike(
    client, api, owner, world
):
    _, url_name, url, payload = mailbox_payload(world)
    del payload["password"]
    response = api(owner).post(url, payload, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"password": ["A new mailbox needs a password."]}
    client.force_login(owner)
    response = client.post(reverse(url_name), as_form_data(payload, Mailbox))
    assert response.status_code == 200
    assert response.context["form"].errors == {"password": ["A new mailbox needs a password."]}
    assert not Mailbox.objects.filter(local_part=payload["local_part"]).exists()


@pytest.mark.parametrize("password", ["", "short"], ids=["none", "too short"])
def test_the_form_and_the_api_refuse_a_first_mailbox_without_a_good_password_alike(
    client, api, owner, world, password
):
    _, url_name, url, payload = domain_payload(world)
    payload["first_mailbox_password"] = password
    response = api(owner).post(url, payload, format="json")
    assert response.status_code == 400
    refused = response.json()["errors"]
    assert list(refused) == ["first_mailbox_password"]
    assert "needs at least" in refused["first_mailbox_password"][0]
    client.force_login(owner)
    response = client.post(reverse(url_name), as_form_data(payload, Domain))
    assert response.status_code == 200
    assert response.context["form"].errors == refused
    assert not Domain.objects.filter(name=payload["name"]).exists()


def test_a_refusal_of_a_field_the_page_does_not_ask_for_is_shown_above_the_form(
    client, api, owner, world
):
    """alice forwards to postmaster@ of the domain about to be made: its standard aliases,
    delivered to alice, would loop, and are refused for their destinations."""
    _, url_name, url, payload = domain_payload(world)
    alice = world["family"].mailboxes.get(local_part="alice")
    Mailbox.objects.filter(pk=alice.pk).update(
        forward_to=[f"postmaster@{payload['name']}"], forward_keep_copy=True
    )
    del payload["first_mailbox"], payload["first_mailbox_password"]
    payload["aliases_to"] = alice.pk
    refused = api(owner).post(url, payload, format="json")
    assert refused.status_code == 400 and list(refused.json()["errors"]) == ["destinations"]
    client.force_login(owner)
    response = client.post(reverse(url_name), as_form_data(payload, Domain))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == ["__all__"]
    assert errors["__all__"] == refused.json()["errors"]["destinations"]
    assert not Domain.objects.filter(name=payload["name"]).exists()
