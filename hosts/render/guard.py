"""Guards: filter rules that keep anyone but the gateway's proxies from speaking for a client.

Every mail connection reaches the home server with a PROXY v2 header naming the client
(docs/proxy-trust.md), and the home server believes the header because of where it comes from:
the hub's tunnel address. Two guards keep that position to the proxies alone.

The mail guard (mail server, Postfix + Dovecot): Postfix believes the client address any PROXY
header names and has no list of trusted proxies (Dovecot has one, ``haproxy_trusted_networks``,
but the rule is kept in one place for both). Listening on the tunnel address alone is not
enough: Linux accepts a packet for any of its addresses on any interface, so a machine on the
home LAN can route the tunnel address through the server's LAN address, and another spoke
reaches it through the hub. So a chain rejects every new connection to those ports unless it
comes in through the tunnel from the hub's tunnel address (or from the host itself, over
loopback).

The proxy guard (gateway, every mail backend): on the gateway, any program can open a
connection to the mail server's PROXY ports from the hub's tunnel address and write a header of
its own; and any program can connect to the gateway's own public ports over loopback, so that
the proxy itself names 127.0.0.1 or ::1 in the header. Mailu's front believes the hub, and its
Postfix relays for loopback (``mynetworks``). So on the gateway, only the proxies' users
(``PROXY_USERS``: HAProxy's, and root for Traefik's container) may open connections to the
mail server's PROXY ports, nothing forwarded through the gateway may (another spoke, a Docker
container), and no program on the gateway reaches the public ports the proxies serve.

Each guard is ``/usr/local/sbin/mailgate-<name>`` (``enable|disable|verify``, idempotent), one
body for both (``scripts/filter-guard.sh``): it replaces its chains atomically with
``iptables-restore --noflush``, for both address families (the family the tunnel does not use
rejects everyone), and a oneshot unit runs it at boot, before the services it guards.
"""

import ipaddress
from dataclasses import dataclass, field

from gateway.bundle import File, RenderError, Unit
from gateway.writers import shell_quote
from hosts.choices import GatewayProxy, MailBackend
from hosts.render import haproxy, shell, systemd
from hosts.render.context import RenderContext
from hosts.render.dovecot import IMAPS_PORT
from hosts.render.postfix import PROXIED_SERVICES

SCRIPT = "/usr/local/sbin/mailgate-mail-guard"
SERVICE = "mailgate-mail-guard.service"
CHAIN = "MAILGATE-MAIL-GUARD"
PORTS = (*sorted(PROXIED_SERVICES), IMAPS_PORT)

PROXY_SCRIPT = "/usr/local/sbin/mailgate-proxy-guard"
PROXY_SERVICE = "mailgate-proxy-guard.service"
PROXY_CHAIN = "MAILGATE-PROXY-GUARD"  # from OUTPUT: the proxies' users pass
DENY_CHAIN = "MAILGATE-PROXY-DENY"  # from FORWARD and loopback INPUT: nobody passes
# Whose connections to the mail server's PROXY ports the gateway lets out: HAProxy drops to its
# own user on a host; on the Traefik gateway, Traefik's container runs as root and the
# haproxy25 container drops to the image's haproxy user (both on the host's network).
PROXY_USERS = {
    GatewayProxy.HAPROXY: (haproxy.HOST_USER,),
    GatewayProxy.TRAEFIK_HAPROXY: ("0", str(haproxy.CONTAINER_UID)),
}
REJECT = "-p tcp -j REJECT --reject-with tcp-reset"


@dataclass
class Rules:
    """What one guard writes into one address family: chain rules and jumps into them."""

    rules: list[str] = field(default_factory=list)  # "CHAIN words..."
    jumps: list[str] = field(default_factory=list)  # "HOOK words... -j CHAIN"


def units(ctx: RenderContext) -> list[Unit]:
    return [*_mail_guard(ctx), *_proxy_guard(ctx)]


def _mail_guard(ctx: RenderContext) -> list[Unit]:
    host = ctx.host
    if not (host.is_mailserver and host.mail_backend == MailBackend.POSTFIX_DOVECOT):
        return []
    return [
        _unit(
            "mail-guard",
            SCRIPT,
            script(ctx),
            SERVICE,
            "Mailgate mail guard: only the gateway reaches the PROXY ports",
            # Before Postfix and Dovecot start, so their listeners are never unguarded.
            ["Before=postfix.service dovecot.service"],
        )
    ]


def script(ctx: RenderContext) -> bytes:
    """The mail guard: the PROXY ports answer the hub's tunnel address through the tunnel."""
    hub = ctx.hub_tunnel_address
    interface = ctx.spoke_of.tunnel.interface
    jump = f"INPUT ! -i lo -p tcp -m multiport --dports {_ports(PORTS)} -j {CHAIN}"
    families = {4: Rules(jumps=[jump]), 6: Rules(jumps=[jump])}
    families[hub.version].rules.append(f"{CHAIN} -i {interface} -s {hub} -j RETURN")
    for rules in families.values():
        rules.rules.append(f"{CHAIN} {REJECT}")
    return _script(
        "Only the gateway reaches the services that read a PROXY v2 header.",
        SCRIPT,
        "mail guard",
        (CHAIN,),
        families,
    )


def _proxy_guard(ctx: RenderContext) -> list[Unit]:
    peer = ctx.mailserver_peer
    if not (ctx.host.is_gateway and ctx.hub_of and peer and peer.host.tunnel_address):
        return []
    return [
        _unit(
            "proxy-guard",
            PROXY_SCRIPT,
            proxy_script(ctx),
            PROXY_SERVICE,
            "Mailgate proxy guard: only the gateway's proxies speak for clients",
            # After Docker, which makes DOCKER-USER; before the host's HAProxy listens.
            ["After=docker.service", "Before=haproxy.service"],
        )
    ]


def proxy_script(ctx: RenderContext) -> bytes:
    """The proxy guard: only the proxies' users open connections to the mail server's PROXY
    ports; nothing forwarded does; nothing on the gateway reaches the ports they serve."""
    home = ipaddress.ip_address(ctx.mailserver_peer.host.tunnel_address)
    interface, ports = ctx.hub_of.interface, _ports(ctx.served_ports)
    local = f"INPUT -i lo -p tcp --syn -m multiport --dports {ports} -j {DENY_CHAIN}"
    families = {4: Rules(jumps=[local]), 6: Rules(jumps=[local])}
    for rules in families.values():
        rules.rules.append(f"{DENY_CHAIN} {REJECT}")
    toward = f"-o {interface} -d {home} -p tcp --syn -m multiport --dports {ports}"
    tunnel = families[home.version]
    tunnel.jumps += [f"OUTPUT {toward} -j {PROXY_CHAIN}", f"FORWARD {toward} -j {DENY_CHAIN}"]
    users = PROXY_USERS.get(ctx.host.gateway_proxy)
    if users is None:
        raise RenderError(f"{ctx.host} has no known gateway proxy: its proxy guard is unknown.")
    tunnel.rules += [f"{PROXY_CHAIN} -m owner --uid-owner {user} -j RETURN" for user in users]
    tunnel.rules.append(f"{PROXY_CHAIN} {REJECT}")
    return _script(
        "Only the gateway's proxies speak for clients to the mail server.",
        PROXY_SCRIPT,
        "proxy guard",
        (PROXY_CHAIN, DENY_CHAIN),
        families,
    )


def _script(summary: str, path: str, label: str, chains, families: dict[int, Rules]) -> bytes:
    return shell.script(
        summary,
        f"{path} {{enable|disable|verify}}",
        [("GUARD", label)],
        ["filter-guard.sh"],
        arrays=[
            ("CHAINS", chains),
            ("IPV4_RULES", families[4].rules),
            ("IPV4_JUMPS", families[4].jumps),
            ("IPV6_RULES", families[6].rules),
            ("IPV6_JUMPS", families[6].jumps),
        ],
    )


def _unit(name, path, content, service, description, ordering) -> Unit:
    service_path = f"/etc/systemd/system/{service}"
    return Unit(
        name=name,
        files=(
            File(path, content, mode=0o755),
            File(service_path, systemd.oneshot(description, path, ordering=ordering)),
        ),
        checks=shell.checks(path),
        activate=(systemd.enable_now(service), f"{shell_quote(path)} enable"),
    )


def _ports(ports) -> str:
    return ",".join(str(port) for port in ports)
