"""SMTP egress through the gateway: outgoing mail (tcp/25) of a spoke leaves the internet from
the hub's public address, so a home line whose provider blocks port 25 can still deliver, and
receivers see the address the gateway's PTR record names.

Both sides get the same two files: ``/usr/local/sbin/mailgate-smtp-egress``
(``enable|disable|status|verify``, idempotent) and a oneshot systemd unit that runs it after the
tunnel comes up, so the rules survive a reboot.

- **Home (a spoke with ``egress_via_hub``)**: tcp/25 is marked (fwmark 0x19) and a policy rule sends
  marked packets to table 100, whose only route is the tunnel; mail to a private address (a relay
  host on the LAN) keeps the main table's route. The sources are the spoke's routed subnet (Mailu's
  containers: marked as they are forwarded, with the Docker exceptions of the Mailu-behind-Traefik
  guide, docs/reference-setups.md) and the host's own Postfix where it runs one (Postfix + Dovecot,
  a relay host, or any spoke without a subnet: marked as it leaves, then given the tunnel address as
  source).
- **Gateway (a hub with such spokes)**: forwards those sources' tcp/25 to the internet and
  translates them to its public IPv4.

The scripts follow the Mailu-behind-Traefik guide's ``smtp-egress-home-via-vps.sh`` and
``smtp-egress-vps.sh`` with these deliberate differences: each rule is written once (``each_rule``),
and enable, disable and verify all walk that one list, so they cannot drift apart; the policy rule
is looked up by its selectors (the guide greps ``ip rule`` for ``fwmark 25``, which never matches
the ``0x19`` that ``ip`` prints, so a second ``enable`` failed on the duplicate rule); a sysctl's
original value is saved only by the first ``enable`` (a second one would save our own values); and
``enable`` first undoes what an earlier, different version of the script enabled, so a changed
subnet or interface leaves no stale rules behind.

The bash lives in ``scripts/``: ``egress-common.sh`` for both sides (there a rule is given as
``TABLE -A|-I CHAIN MATCH...``: ``-A`` appends it, ``-I`` puts it at the top of its chain, before
Docker's or a generic MASQUERADE), then ``egress-home.sh`` or ``egress-gateway.sh``.
"""

import ipaddress

from gateway.bundle import File, RenderError, Unit
from gateway.writers import shell_quote
from hosts.choices import MailBackend
from hosts.models import MAILU_WITHOUT_SUBNET, TunnelPeer
from hosts.render import shell, systemd
from hosts.render.context import RenderContext
from hosts.render.wireguard import service as wireguard_service

SCRIPT = "/usr/local/sbin/mailgate-smtp-egress"
USAGE = f"{SCRIPT} {{enable|disable|status|verify}}"
SERVICE = "mailgate-smtp-egress.service"
SERVICE_PATH = f"/etc/systemd/system/{SERVICE}"
MARK = "0x19"  # 25, for SMTP
PRIVATE_NETS = tuple(
    ipaddress.IPv4Network(net)
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")
)
TABLE = 100
PRIORITY = 10025


def units(ctx: RenderContext) -> list[Unit]:
    home = ctx.spoke_of if ctx.spoke_of and ctx.spoke_of.egress_via_hub else None
    egress_spokes = sorted((p for p in ctx.peers if p.egress_via_hub), key=_by_host_name)
    if home and egress_spokes:
        raise RenderError(
            f"{ctx.host.name} cannot both send SMTP through a gateway and be the gateway of "
            "other spokes' SMTP: both would need mailgate-smtp-egress."
        )
    if home:
        return [_unit(home.tunnel.interface, home_script(home))]
    if egress_spokes:
        script = gateway_script(ctx, egress_spokes)
        return [_unit(ctx.hub_of.interface, script)]
    return []


def home_script(peer: TunnelPeer) -> bytes:
    """The spoke's side: which traffic enters the tunnel, and how."""
    if not peer.routed_subnet and peer.host.mail_backend == MailBackend.MAILU:
        raise RenderError(MAILU_WITHOUT_SUBNET)  # a row saved before TunnelPeer.clean said so
    source = str(_ipv4_network(peer.routed_subnet, peer)) if peer.routed_subnet else ""
    variables = [
        ("WG_IF", peer.tunnel.interface),
        ("SOURCE_NET", source),
        ("OWN_MAIL", "yes" if own_mail(peer) else "no"),
        ("TUNNEL_ADDRESS", _ipv4_address(peer.host.tunnel_address, peer)),
        ("MARK_HEX", MARK),
        ("TABLE", TABLE),
        ("PRIORITY", PRIORITY),
    ]
    senders = [
        *(["tcp/25 from SOURCE_NET (e.g. Mailu's containers)"] if source else []),
        *(["this host's own tcp/25 (OWN_MAIL)"] if own_mail(peer) else []),
    ]
    purpose = f"{' and '.join(senders)} enters the tunnel."
    return shell.script(
        f"SMTP egress through the gateway, home side: {purpose}",
        USAGE,
        variables,
        ["egress-common.sh", "egress-home.sh"],
        arrays=[("PRIVATE_NETS", PRIVATE_NETS)],
    )


def own_mail(peer: TunnelPeer) -> bool:
    """Whether the spoke's own Postfix sends (a Postfix + Dovecot mail server or a relay host),
    beside or instead of a routed subnet's containers (Mailu's)."""
    host = peer.host
    return (
        not peer.routed_subnet
        or host.mail_backend == MailBackend.POSTFIX_DOVECOT
        or (host.is_relay)
    )


def gateway_script(ctx: RenderContext, spokes: list[TunnelPeer]) -> bytes:
    """The hub's side: forward the spokes' tcp/25 to the internet and translate it."""
    host = ctx.host
    if not host.public_ipv4:
        raise RenderError(
            f"The gateway {host.name} needs a public IPv4 address for its spokes' SMTP to "
            "leave from."
        )
    sources = [source for peer in spokes for source in egress_sources(peer)]
    variables = [
        ("WAN_IF", host.wan_interface),
        ("WG_IF", ctx.hub_of.interface),
        ("PUBLIC_IPV4", ipaddress.IPv4Address(host.public_ipv4)),
    ]
    purpose = "the spokes' tcp/25 leaves through WAN_IF as PUBLIC_IPV4."
    return shell.script(
        f"SMTP egress through the gateway, gateway side: {purpose}",
        USAGE,
        variables,
        ["egress-common.sh", "egress-gateway.sh"],
        arrays=[("SOURCES", sources)],
    )


def egress_sources(peer: TunnelPeer) -> list[str]:
    """The addresses whose tcp/25 a spoke sends through the hub: its routed subnet (Mailu's
    containers) and its own tunnel address (its own Postfix, after its own SNAT to it)."""
    sources = [str(_ipv4_network(peer.routed_subnet, peer))] if peer.routed_subnet else []
    if own_mail(peer):
        sources.append(f"{_ipv4_address(peer.host.tunnel_address, peer)}/32")
    return sources


def _unit(interface: str, script: bytes) -> Unit:
    tunnel = wireguard_service(interface)
    quoted = shell_quote(SCRIPT)
    return Unit(
        name="smtp-egress",
        files=(
            File(SCRIPT, script, mode=0o755),
            File(SERVICE_PATH, _service(tunnel)),
        ),
        checks=shell.checks(SCRIPT),
        # The unit's own start runs enable the first time; running enable again applies a
        # changed script to an already active unit without a gap in the rules.
        activate=(systemd.enable_now(SERVICE), f"{quoted} enable"),
    )


def _service(tunnel_unit: str) -> bytes:
    """Runs enable once the tunnel is up (the table-100 route needs the interface), and again
    whenever the tunnel restarts (Requires= restarts it along); after Docker, whose
    DOCKER-USER chain the home side fills when it exists."""
    return systemd.oneshot(
        "Mailgate SMTP egress through the WireGuard gateway",
        SCRIPT,
        ordering=[f"Requires={tunnel_unit}", f"After={tunnel_unit} docker.service"],
    )


def _ipv4_network(value: str, peer: TunnelPeer) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value)
    except ValueError:
        raise RenderError(
            f"SMTP egress of {peer.host.name} needs an IPv4 routed subnet, not {value!r}."
        ) from None


def _ipv4_address(value, peer: TunnelPeer) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise RenderError(
            f"SMTP egress of {peer.host.name} needs an IPv4 tunnel address, not {value!r}."
        ) from None


def _by_host_name(peer: TunnelPeer) -> str:
    return peer.host.name
