"""WireGuard: ``/etc/wireguard/<interface>.conf`` of the hub (the gateway) and of each spoke.

The hub listens and routes between the tunnel and the internet; a spoke dials the hub and, when
its SMTP leaves through the gateway, accepts any destination through the tunnel while keeping
wg-quick out of its routing table (``Table = off``): the policy rules of
``mailgate-smtp-egress`` (``egress.py``) decide what enters the tunnel. "The reference" below is
the Mailu-behind-Traefik guide's ``wg0.conf`` (``docs/reference-setups.md``).
"""

import ipaddress

from django.core.exceptions import ValidationError

from gateway.bundle import File, RenderError, Unit
from gateway.validators import validate_wireguard_key
from gateway.writers import lines, shell_quote
from hosts.models import Host, Tunnel, TunnelPeer
from hosts.render import systemd
from hosts.render.context import RenderContext

CONFIG_DIR = "/etc/wireguard"

# The hub forwards between the tunnel and its other interfaces (spoke to spoke, SMTP egress).
# As in the reference, each rule is added only when missing, so running PostUp twice (a
# restart after a failed stop) never stacks duplicates.
HUB_POST_UP = (
    "{ipt} -C FORWARD -i %i -j ACCEPT 2>/dev/null || {ipt} -A FORWARD -i %i -j ACCEPT; "
    "{ipt} -C FORWARD -o %i -j ACCEPT 2>/dev/null || {ipt} -A FORWARD -o %i -j ACCEPT"
)
HUB_POST_DOWN = (
    "{ipt} -D FORWARD -i %i -j ACCEPT 2>/dev/null || true; "
    "{ipt} -D FORWARD -o %i -j ACCEPT 2>/dev/null || true"
)

# What ``wg`` itself reads once wg-quick has stripped its own keys (Address, MTU, Table, hooks):
# anything else in the stripped file is a line that neither tool understands. Only the key
# name of a bad line is printed, never its value (it may be a private key).
STRIPPED_GRAMMAR = r"""awk '
/^[[:space:]]*(#|$)/ { next }
$0 == "[Interface]" { section = "interface"; next }
$0 == "[Peer]" { section = "peer"; next }
section == "interface" && /^(PrivateKey|ListenPort|FwMark) = [^ ]+$/ { next }
section == "peer" && /^(PublicKey|PresharedKey|Endpoint|PersistentKeepalive) = [^ ]+$/ { next }
section == "peer" && /^AllowedIPs = [^ ,]+(, [^ ,]+)*$/ { next }
{ sub(/[[:space:]]*=.*/, ""); bad = 1 }
{ print "unexpected line in the WireGuard configuration: " $0 > "/dev/stderr" }
END { exit bad }'"""
KEY_VALUES = r"""awk '$1 ~ /^(PrivateKey|PublicKey|PresharedKey)$/ { print $3 }'"""


def units(ctx: RenderContext) -> list[Unit]:
    result = []
    if ctx.hub_of:
        result.append(_unit(ctx.hub_of, hub_config(ctx.hub_of, ctx.peers), _hub_routes(ctx)))
    if ctx.spoke_of:
        result.append(_unit(ctx.spoke_of.tunnel, spoke_config(ctx.spoke_of)))
    return result


def config_path(interface: str) -> str:
    return f"{CONFIG_DIR}/{interface}.conf"


def service(interface: str) -> str:
    """The wg-quick unit of an interface, its name escaped as ``systemd-escape`` would (the
    interface validator allows ``=`` and ``+``, which a unit name may not hold)."""
    escaped = "".join(
        char if char.isascii() and (char.isalnum() or char in ":_.-") else f"\\x{ord(char):02x}"
        for char in interface
    )
    if escaped.startswith("."):
        escaped = "\\x2e" + escaped[1:]
    return f"wg-quick@{escaped}.service"


def hub_config(tunnel: Tunnel, peers: tuple[TunnelPeer, ...]) -> bytes:
    network = _network(tunnel)
    ipt = "ip6tables" if network.version == 6 else "iptables"
    body = [
        "[Interface]",
        f"Address = {_tunnel_address(tunnel.hub)}/{network.prefixlen}",
        f"ListenPort = {tunnel.listen_port}",
        f"PrivateKey = {_private_key(tunnel.hub_private_key, tunnel.hub)}",
        f"MTU = {tunnel.mtu}",
        "# Forward between the tunnel and the other interfaces (rules added only when missing).",
        f"PostUp = {HUB_POST_UP.format(ipt=ipt)}",
        f"PostDown = {HUB_POST_DOWN.format(ipt=ipt)}",
    ]
    for peer in sorted(peers, key=_by_host_name):
        body += ["", f"# {peer.host.name}", "[Peer]", f"PublicKey = {_public_key(peer)}"]
        body.append(f"AllowedIPs = {', '.join(_peer_allowed_ips(peer))}")
    return lines(body)


def spoke_config(peer: TunnelPeer) -> bytes:
    tunnel, hub = peer.tunnel, peer.tunnel.hub
    network = _network(tunnel)
    address = _tunnel_address(peer.host)
    # Differences from the reference, same effect: the /32 that wg-quick assumes for a bare
    # address is written out; %i is the interface wg-quick brings up (the reference's wg0); the
    # endpoint is the hub's address, since Mailgate knows no separate name for it.
    body = [
        "[Interface]",
        f"Address = {address}/{address.max_prefixlen}",
        f"PrivateKey = {_private_key(peer.private_key, peer.host)}",
        f"MTU = {tunnel.mtu}",
        "# Routing is Mailgate's (policy rules): wg-quick must not turn AllowedIPs into routes.",
        "Table = off",
        "# Reach the hub and the other spokes through the tunnel.",
        f"PostUp = ip route add {network} dev %i || true",
        f"PostDown = ip route del {network} dev %i || true",
    ]
    if peer.egress_via_hub:
        # Only with SMTP egress: the replies come in through the tunnel while the main table
        # routes their source elsewhere, which strict reverse-path filtering would drop. A
        # spoke without egress routes symmetrically and keeps the stricter default.
        body += [
            "# Loose reverse-path filter: SMTP replies arrive through the tunnel.",
            "PreUp = sysctl -w net.ipv4.conf.all.rp_filter=2",
            "PostDown = sysctl -w net.ipv4.conf.all.rp_filter=0",
        ]
    body += [
        "",
        f"# {hub.name} (the hub)",
        "[Peer]",
        f"PublicKey = {_hub_public_key(tunnel)}",
        f"Endpoint = {_endpoint(tunnel)}",
        f"AllowedIPs = {', '.join(_hub_allowed_ips(peer, network))}",
    ]
    if peer.keepalive:
        body.append(f"PersistentKeepalive = {peer.keepalive}")
    return lines(body)


def _unit(tunnel: Tunnel, content: bytes, routes: tuple[str, ...] = ()) -> Unit:
    interface = tunnel.interface
    path = config_path(interface)
    return Unit(
        name=f"wireguard-{interface}",
        files=(File(path, content, mode=0o600, secret=True),),
        checks=(_check(path),),
        activate=(_activate(interface), *routes),
    )


def _check(path: str) -> str:
    """wg-quick strip must read the staged file (its name already is ``<interface>.conf``,
    from which wg-quick takes the interface name), what remains must be wg's own syntax, and
    every key must decode as a Curve25519 key (``wg pubkey`` refuses anything else)."""
    conf = f'"$STAGE"{shell_quote(path)}'
    return "\n".join(
        [
            "(",
            "set -e",
            f'stripped="$(wg-quick strip {conf})"',
            f"printf '%s\\n' \"$stripped\" | {STRIPPED_GRAMMAR}",
            f"for key in $(printf '%s\\n' \"$stripped\" | {KEY_VALUES}); do",
            "  printf '%s\\n' \"$key\" | wg pubkey >/dev/null",
            "done",
            ")",
        ]
    )


def _activate(interface: str) -> str:
    """A running tunnel takes new keys and peers with ``wg syncconf`` without dropping a
    connection; a new one is started (and enabled for boot) through its wg-quick unit. Changes
    to Address, MTU or the hooks take effect at the next restart of that unit."""
    name = shell_quote(interface)
    unit = service(interface)
    sync = shell_quote(f"wg syncconf {name} <(wg-quick strip {name})")
    return (
        f"if ip link show dev {name} >/dev/null 2>&1; then "
        f"bash -c {sync} && systemctl enable {shell_quote(unit)}; "
        f"else {systemd.enable_now(unit)}; fi"
    )


def _hub_routes(ctx: RenderContext) -> tuple[str, ...]:
    """wg-quick routes each peer's AllowedIPs when it starts the hub, but ``wg syncconf`` does
    not: a spoke's routed subnet added later needs its route here, or replies to it would leave
    through the default route."""
    interface = shell_quote(ctx.hub_of.interface)
    subnets = sorted({_routed_subnet(peer) for peer in ctx.peers if peer.routed_subnet}, key=str)
    return tuple(f"ip route replace {subnet} dev {interface}" for subnet in subnets)


def _peer_allowed_ips(peer: TunnelPeer) -> list[str]:
    """What the hub accepts from a spoke and routes back to it: the spoke's own tunnel address
    and the network behind it (Mailu's containers send with their own addresses)."""
    address = _tunnel_address(peer.host)
    allowed = [f"{address}/{address.max_prefixlen}"]
    if peer.routed_subnet:
        allowed.append(str(_routed_subnet(peer)))
    return allowed


def _hub_allowed_ips(peer: TunnelPeer, network) -> list[str]:
    """With SMTP egress the hub may carry any IPv4 destination: the policy rules choose what
    enters the tunnel, and ``Table = off`` keeps this from becoming a default route."""
    return ["0.0.0.0/0", str(network)] if peer.egress_via_hub else [str(network)]


def _endpoint(tunnel: Tunnel) -> str:
    hub = tunnel.hub
    if hub.public_ipv4:
        return f"{ipaddress.IPv4Address(hub.public_ipv4)}:{tunnel.listen_port}"
    if hub.public_ipv6:
        return f"[{ipaddress.IPv6Address(hub.public_ipv6)}]:{tunnel.listen_port}"
    raise RenderError(f"The hub {hub.name} has no public address for its spokes to dial.")


def _network(tunnel: Tunnel):
    if tunnel.network is None:
        raise RenderError(f"The tunnel {tunnel.interface} has no valid subnet ({tunnel.subnet!r}).")
    return tunnel.network


def _tunnel_address(host: Host):
    try:
        return ipaddress.ip_address(host.tunnel_address)
    except ValueError:
        raise RenderError(f"The host {host.name} has no valid tunnel address.") from None


def _routed_subnet(peer: TunnelPeer):
    try:
        return ipaddress.ip_network(peer.routed_subnet)
    except ValueError:
        raise RenderError(
            f"The routed subnet {peer.routed_subnet!r} of {peer.host.name} is not a network."
        ) from None


def _private_key(key: str, host: Host) -> str:
    """The key as written, once it is known to be a WireGuard key (then its public half, which
    the other end needs, can be derived too)."""
    try:
        validate_wireguard_key(key)
    except ValidationError:
        raise RenderError(f"The WireGuard private key of {host.name} is not a valid key.") from None
    return key


def _public_key(peer: TunnelPeer) -> str:
    _private_key(peer.private_key, peer.host)
    return peer.public_key


def _hub_public_key(tunnel: Tunnel) -> str:
    _private_key(tunnel.hub_private_key, tunnel.hub)
    return tunnel.hub_public_key


def _by_host_name(peer: TunnelPeer) -> str:
    return peer.host.name
