"""The reference setup as unsaved model objects, for renderer tests that need no database.

Its values are the ones of the guides (``docs/reference-setups.md``) (VPS 1.2.3.4, tunnel
10.0.1.0/24 with the hub at .1 and home at .2, Mailu's 192.168.203.0/24, mail.example.com), so
rendered files can be put beside the guides' snippets. Keys and hashes are fixed so output is
byte-for-byte repeatable."""

import dataclasses
import os
from pathlib import Path

from gateway.bundle import Bundle
from gateway.selectors import AliasEntry, DomainEntry, MailboxEntry, MailDirectory
from hosts.models import Host, Relay, Tunnel, TunnelPeer
from hosts.render import mailu, traefik
from hosts.render.context import RenderContext

HUB_KEY = "CNM1A+4n1MEwVdDO/sXnML5O8uQc1s/OQ0k27B58nUs="
HOME_KEY = "TqFAWIFQdzzjqs54au739ASc4QD6ZJyU+73blg8dqUI="
HASH = "{BLF-CRYPT}$2b$04$pgh9Q.MzFFKMHJaF8bCa3unoZJnX/hJ6X2TKIDfR2.yaBQRcWQ2vC"
GOLDEN = Path(__file__).parent / "golden"


def directory() -> MailDirectory:
    def mailbox(local, domain, name="", quota=0):
        return MailboxEntry(f"{local}@{domain}", local, domain, name, quota, HASH)

    def alias(local, domain, targets, sender=False):
        address = f"{local}@{domain}" if local else f"@{domain}"
        return AliasEntry(address, local, domain, tuple(targets), sender)

    return MailDirectory(
        domains=(
            DomainEntry("example.com", "mail.example.com"),
            DomainEntry("family.example", "mail.example.com"),
        ),
        mailboxes=(
            mailbox("john", "example.com", "John Doe", 2048),
            mailbox("alice", "family.example", "Alice Example"),
            mailbox("carol", "family.example"),
        ),
        aliases=(
            alias("postmaster", "example.com", ["john@example.com"]),
            alias("", "family.example", ["alice@family.example"]),
            alias("team", "family.example", ["alice@family.example", "carol@family.example"], True),
            alias("uncle", "family.example", ["uncle@elsewhere.example"]),
        ),
    )


def hosts() -> dict:
    """vps (gateway, hub), home (Postfix+Dovecot mail server, spoke), relay (Proton Bridge)."""
    bridge = Relay(
        name="bridge",
        username="joe@proton.me",
        password="wzRrv5R6xOREfmcQ12837ASUDFiudfhsai",
        rewrite_sender_to="joe@proton.me",
    )
    vps = Host(
        name="vps",
        is_gateway=True,
        gateway_proxy="traefik-haproxy",
        ssh_address="1.2.3.4",
        public_ipv4="1.2.3.4",
        tunnel_address="10.0.1.1",
        fqdn="mail.example.com",
        acme_email="user@example.com",
        cloudflare_api_token="cf-token-secret",
    )
    home = Host(
        name="home",
        is_mailserver=True,
        mail_backend="postfix-dovecot",
        ssh_address="192.168.1.10",
        tunnel_address="10.0.1.2",
        mailu_secret_key="0123456789abcdef0123456789abcdef",
    )
    relay = Host(
        name="relay",
        is_relay=True,
        ssh_address="192.168.1.11",
        relay=bridge,
        lan_networks=["192.168.1.0/24"],
    )
    tunnel = Tunnel(hub=vps, subnet="10.0.1.0/24", hub_private_key=HUB_KEY)
    peer = TunnelPeer(
        tunnel=tunnel, host=home, private_key=HOME_KEY, routed_subnet="192.168.203.0/24"
    )
    return {"vps": vps, "home": home, "relay": relay, "tunnel": tunnel, "peer": peer}


def context(world: dict, name: str, mail: MailDirectory | None = None) -> RenderContext:
    """The render context of one host of ``world`` (see ``hosts()``)."""
    host = world[name]
    tunnel, peer = world["tunnel"], world["peer"]
    return RenderContext(
        host=host,
        directory=mail or directory(),
        hub_of=tunnel if tunnel.hub is host else None,
        peers=(peer,) if tunnel.hub is host else (),
        spoke_of=peer if peer.host is host else None,
    )


def mailu_world() -> dict:
    """The Mailu-behind-Traefik guide's setup: the Traefik gateway in front of Mailu, which serves
    every port."""
    world = hosts()
    world["home"].mail_backend = "mailu"
    return world


def with_relay(world: dict, **fields) -> dict:
    """``world`` with the home server sending through a smarthost (``fields`` change it)."""
    values = {"name": "smarthost", "host": "192.168.1.11", "port": 587, "username": "joe"}
    world["home"].relay = Relay(**{**values, "password": "s3cret-Pass_word", **fields})
    return world


def mailu_bundle(ctx: RenderContext) -> Bundle:
    """The bundle of Mailu's units alone for the host of ``ctx``."""
    return Bundle(host=ctx.host.name, units=tuple(mailu.units(ctx)))


def traefik_unit(world: dict):
    (unit,) = traefik.units(context(world, "vps"))
    return unit


def file_of(unit, path: str) -> bytes:
    """The content of ``path`` in a bundle of ``unit`` alone."""
    return Bundle(host="vps", units=(unit,)).file(path).content


def with_directory(ctx: RenderContext, **changes) -> RenderContext:
    return dataclasses.replace(ctx, directory=dataclasses.replace(ctx.directory, **changes))


def assert_golden(content: bytes, name: str) -> None:
    """Compare with ``tests/golden/<name>``; MAILGATE_UPDATE_GOLDEN=1 rewrites it (review the
    diff against the guides before committing)."""
    path = GOLDEN / name
    if os.environ.get("MAILGATE_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    assert path.exists(), f"No golden file {path}; run with MAILGATE_UPDATE_GOLDEN=1 once."
    assert content.decode() == path.read_text(), f"{name} differs from its golden file"
