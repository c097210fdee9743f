"""The mail server's guard: only the gateway reaches the services that read a PROXY v2 header.

Postfix believes the client address any PROXY header names, and has no list of trusted proxies
(Dovecot has one, ``haproxy_trusted_networks``, but the rule is kept in one place for both).
Listening on the tunnel address alone is not enough: Linux accepts a packet for any of its
addresses on any interface, so a machine on the home LAN can route the tunnel address through
the server's LAN address, and another spoke reaches it through the hub. So a filter chain sends
every new connection to those ports to ``REJECT`` unless it comes in through the tunnel from
the hub's tunnel address (or from the host itself, over loopback).

``/usr/local/sbin/mailgate-mail-guard`` (``enable|disable|verify``, idempotent) replaces its
chain atomically with ``iptables-restore --noflush``, for both address families (the family the
tunnel does not use rejects everyone), and a oneshot unit runs it before Postfix and Dovecot
start, so the rules survive a reboot.
"""

from gateway.bundle import File, Unit
from gateway.writers import shell_quote
from hosts.choices import MailBackend
from hosts.render import shell, systemd
from hosts.render.context import RenderContext
from hosts.render.dovecot import IMAPS_PORT
from hosts.render.postfix import PROXIED_SERVICES

SCRIPT = "/usr/local/sbin/mailgate-mail-guard"
SERVICE = "mailgate-mail-guard.service"
SERVICE_PATH = f"/etc/systemd/system/{SERVICE}"
CHAIN = "MAILGATE-MAIL-GUARD"
PORTS = (*sorted(PROXIED_SERVICES), IMAPS_PORT)


def units(ctx: RenderContext) -> list[Unit]:
    host = ctx.host
    if not (host.is_mailserver and host.mail_backend == MailBackend.POSTFIX_DOVECOT):
        return []
    quoted = shell_quote(SCRIPT)
    return [
        Unit(
            name="mail-guard",
            files=(File(SCRIPT, script(ctx), mode=0o755), File(SERVICE_PATH, _service())),
            checks=shell.checks(SCRIPT),
            # Before Postfix and Dovecot reload, so the new listeners are never unguarded.
            activate=(systemd.enable_now(SERVICE), f"{quoted} enable"),
        )
    ]


def script(ctx: RenderContext) -> bytes:
    address = ctx.hub_tunnel_address
    variables = [
        ("WG_IF", ctx.spoke_of.tunnel.interface),
        ("HUB_IPV4", address if address.version == 4 else ""),
        ("HUB_IPV6", address if address.version == 6 else ""),
        ("PORTS", ",".join(str(port) for port in PORTS)),
        ("CHAIN", CHAIN),
    ]
    return shell.script(
        "Only the gateway reaches the services that read a PROXY v2 header.",
        f"{SCRIPT} {{enable|disable|verify}}",
        variables,
        ["mail-guard.sh"],
    )


def _service() -> bytes:
    return systemd.oneshot(
        "Mailgate mail guard: only the gateway reaches the PROXY ports",
        SCRIPT,
        ordering=["Before=postfix.service dovecot.service"],
    )
