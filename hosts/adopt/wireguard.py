"""The tunnel's side of adoption: ``wg0.conf`` (or the tunnel's own interface) on the hub and
on each spoke, so that the tunnel keeps its keys, addresses, port, MTU and keepalive, and the
gateway's flavour from the files it runs (Traefik's static file, HAProxy's)."""

import ipaddress

from hosts.adopt import readers
from hosts.adopt.found import Found, FoundTunnel
from hosts.adopt.report import Report, Where
from hosts.choices import GatewayProxy
from hosts.render import wireguard

TRAEFIK = "/etc/traefik/traefik.yml"
HAPROXY = "/etc/haproxy/haproxy.cfg"


def read(tree, interface: str, found: Found, report: Report) -> None:
    path = wireguard.config_path(interface)
    text = tree.read(path)
    if text is None:
        return
    try:
        sections = readers.wireguard(text.decode())
    except readers.Unreadable as exc:
        report.error(Where(path, exc.line), str(exc))
        return
    own = next((s for s in sections if s.name == "Interface"), None)
    if own is None or not own.get("PrivateKey") or not own.get("Address"):
        report.error(Where(path, 1), "no [Interface] with its PrivateKey and Address")
        return
    address = ipaddress.ip_interface(own.get("Address").split(",")[0].strip())
    tunnel = FoundTunnel(
        interface=interface,
        where=Where(path, own.line),
        private_key=own.get("PrivateKey"),
        address=str(address.ip),
        prefix=address.network.prefixlen,
        mtu=int(own.get("MTU") or 0),
        listen_port=int(own.get("ListenPort") or 0),
    )
    for peer in (s for s in sections if s.name == "Peer"):
        allowed = [ip.strip() for ip in peer.get("AllowedIPs").split(",") if ip.strip()]
        tunnel.peers.append((peer.get("PublicKey"), allowed, Where(path, peer.line)))
        if not tunnel.listen_port:  # a spoke: its one peer is the hub
            tunnel.hub_public_key = peer.get("PublicKey")
            tunnel.keepalive = int(peer.get("PersistentKeepalive") or 0)
    found.tunnel = tunnel
    report.adopt(tunnel.where, f"tunnel {interface} ({'hub' if tunnel.listen_port else 'spoke'})")
    for key in ("PostUp", "PreUp", "PostDown", "DNS", "Table", "FwMark", "SaveConfig"):
        if own.get(key):
            report.unknown(
                tunnel.where, f"{key} = {own.get(key)} (Mailgate writes its own routing rules)"
            )


def gateway_flavour(tree, found: Found, report: Report) -> None:
    if tree.read(TRAEFIK) is not None:
        found.host["gateway_proxy"] = (GatewayProxy.TRAEFIK_HAPROXY, Where(TRAEFIK))
    elif tree.read(HAPROXY) is not None:
        found.host["gateway_proxy"] = (GatewayProxy.HAPROXY, Where(HAPROXY))
    else:
        return
    value, where = found.host["gateway_proxy"]
    report.adopt(where, f"gateway flavour {value}")
