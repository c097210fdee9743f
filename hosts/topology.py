"""The topology picture: an SVG drawn on the server from the hosts, the tunnel, the gateway's
ports and the mail flows, each element filled with the colour of its status items.

Columns, left to right: the internet, the gateways (with their public ports), the hosts behind
them (joined by the WireGuard tunnel), and the smarthosts those hosts relay through. Arrows are
the mail flows: inbound SMTP (25), submission (587, 465), IMAPS (993) and HTTPS (443) from the
internet to the gateway and on through the tunnel; SMTP egress from a spoke back through its hub;
the relay to a smarthost. The SVG is built as an element tree, so names are escaped by the
serializer; colour is never the only signal (every element's title says its status).
"""

import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass

from gateway.models import StatusItem
from gateway.status import Colour, worst
from hosts.models import Host, Relay, TunnelPeer
from hosts.probes import FLOW_PORTS
from hosts.render.context import MAIL_PORTS

FILL = {Colour.GREEN: "#2e7d32", Colour.AMBER: "#f9a825", Colour.RED: "#c62828"}
UNKNOWN = "#78909c"  # not checked yet
COLUMNS = (20, 250, 540, 800)
BOX_WIDTH, BOX_HEIGHT, ROW = 170, 64, 110
PORT_ROW = 26
GATEWAY_ROW = BOX_HEIGHT + 30 + len(FLOW_PORTS) * PORT_ROW  # a gateway's box and its ports


@dataclass(frozen=True)
class Topology:
    gateways: list[Host]
    spokes: list[Host]  # every other host
    relays: list[Relay]
    peers: list[TunnelPeer]  # with their tunnel and host
    colours: dict[str, str]  # element -> worst colour of its status items


def topology_load() -> Topology:
    """Everything the picture shows, in four queries."""
    hosts = list(Host.objects.order_by("name"))
    colours: dict[str, list[str]] = defaultdict(list)
    for element, colour in StatusItem.objects.exclude(element="").values_list("element", "colour"):
        colours[element].append(colour)
    return Topology(
        gateways=[host for host in hosts if host.is_gateway],
        spokes=[host for host in hosts if not host.is_gateway],
        relays=list(Relay.objects.filter(hosts__isnull=False).distinct().order_by("name")),
        peers=list(TunnelPeer.objects.select_related("tunnel")),
        colours={element: worst(found) for element, found in colours.items()},
    )


def topology_svg(topology: Topology) -> str:
    rows = max(len(topology.spokes), len(topology.relays), 1)
    height = 50 + max(rows * ROW, len(topology.gateways) * GATEWAY_ROW)
    svg = ET.Element(
        "svg",
        xmlns="http://www.w3.org/2000/svg",
        viewBox=f"0 0 1000 {height}",
        role="img",
        **{"aria-labelledby": "topology-title topology-desc", "class": "topology"},
    )
    ET.SubElement(svg, "title", id="topology-title").text = "Topology of the mail gateway"
    ET.SubElement(svg, "desc", id="topology-desc").text = _description(topology)
    _arrowhead(svg)
    internet = _box(svg, "internet", "Internet", "senders, mail clients", COLUMNS[0], 40, UNKNOWN)
    boxes = {}
    for row, host in enumerate(topology.gateways):
        boxes[host.pk] = _host_box(svg, topology, host, COLUMNS[1], 40 + row * GATEWAY_ROW)
        _gateway_ports(svg, topology, host, internet, boxes[host.pk])
    for row, host in enumerate(topology.spokes):
        boxes[host.pk] = _host_box(svg, topology, host, COLUMNS[2], 40 + row * ROW)
    for peer in topology.peers:
        if peer.tunnel.hub_id in boxes and peer.host_id in boxes:
            _tunnel(svg, topology, peer, boxes[peer.tunnel.hub_id], boxes[peer.host_id])
    for row, relay in enumerate(topology.relays):
        y = 40 + row * ROW
        box = _box(svg, f"smarthost {relay}", relay.name, relay.next_hop, COLUMNS[3], y, UNKNOWN)
        for host in topology.spokes:
            if host.relay_id == relay.pk:
                _flow(svg, boxes[host.pk], box, "relay", dashed=False)
    ET.indent(svg, space="")
    return ET.tostring(svg, encoding="unicode")


def _description(topology: Topology) -> str:
    gateways = ", ".join(host.name for host in topology.gateways) or "no gateway yet"
    spokes = ", ".join(host.name for host in topology.spokes) or "no other host yet"
    return (
        f"Mail from the internet reaches the gateway ({gateways}) on ports "
        f"{', '.join(map(str, FLOW_PORTS))} and goes on through the WireGuard tunnel to "
        f"{spokes}; outgoing mail leaves through the gateway or a smarthost."
    )


def _arrowhead(svg: ET.Element) -> None:
    marker = ET.SubElement(
        ET.SubElement(svg, "defs"),
        "marker",
        id="arrow",
        viewBox="0 0 10 10",
        refX="9",
        refY="5",
        markerWidth="7",
        markerHeight="7",
        orient="auto-start-reverse",
    )
    ET.SubElement(marker, "path", d="M0,0 L10,5 L0,10 z", fill="#546e7a")


def _status(topology: Topology, element: str) -> tuple[str, str]:
    colour = topology.colours.get(element)
    return (FILL[colour], Colour(colour).label) if colour else (UNKNOWN, "not checked yet")


def _box(svg, name: str, title: str, subtitle: str, x: int, y: int, fill: str, status=""):
    group = ET.SubElement(svg, "g", {"class": "node"})
    ET.SubElement(group, "title").text = f"{name}: {status}" if status else name
    ET.SubElement(
        group,
        "rect",
        x=str(x),
        y=str(y),
        width=str(BOX_WIDTH),
        height=str(BOX_HEIGHT),
        rx="8",
        fill="#fff",
        stroke=fill,
        **{"stroke-width": "4"},
    )
    ET.SubElement(
        group, "text", x=str(x + 12), y=str(y + 26), **{"font-weight": "bold"}
    ).text = title
    ET.SubElement(
        group, "text", x=str(x + 12), y=str(y + 48), **{"font-size": "13"}
    ).text = subtitle
    if status:
        ET.SubElement(group, "circle", cx=str(x + BOX_WIDTH - 16), cy=str(y + 18), r="7", fill=fill)
    return (x, y)


def _host_box(svg, topology: Topology, host: Host, x: int, y: int):
    fill, status = _status(topology, f"host:{host.pk}")
    roles = [
        role
        for role, has in (
            ("gateway", host.is_gateway),
            ("mail server", host.is_mailserver),
            ("relay", host.is_relay),
        )
        if has
    ]
    return _box(svg, f"host {host}", host.name, " · ".join(roles), x, y, fill, status)


def _gateway_ports(svg, topology: Topology, host: Host, internet, box) -> None:
    """A badge per public port on the gateway's left edge, with the flow from the internet."""
    x, y = box
    for row, port in enumerate(FLOW_PORTS):
        fill, status = _status(topology, f"port:{host.pk}:{port}")
        top = y + BOX_HEIGHT + 8 + row * PORT_ROW
        badge = ET.SubElement(svg, "g", {"class": "port"})
        service = MAIL_PORTS.get(port, "https")
        ET.SubElement(badge, "title").text = f"{host} port {port} ({service}): {status}"
        ET.SubElement(
            badge, "rect", x=str(x), y=str(top), width="150", height="22", rx="4", fill=fill
        )
        ink = "#000" if fill == FILL[Colour.AMBER] else "#fff"  # contrast on amber
        ET.SubElement(
            badge, "text", x=str(x + 8), y=str(top + 16), fill=ink, **{"font-size": "13"}
        ).text = f"{port} {service}"
        _line(svg, (internet[0] + BOX_WIDTH, internet[1] + 40), (x, top + 11), UNKNOWN)
    _line(svg, (x, y + 20), (internet[0] + BOX_WIDTH, internet[1] + 20), "#546e7a")  # egress


def _tunnel(svg, topology: Topology, peer: TunnelPeer, hub, spoke) -> None:
    fill, status = _status(topology, f"peer:{peer.pk}")
    group = ET.SubElement(svg, "g", {"class": "tunnel"})
    ET.SubElement(group, "title").text = f"WireGuard {peer.tunnel.interface}: {status}"
    start, end = (hub[0] + BOX_WIDTH, hub[1] + 32), (spoke[0], spoke[1] + 32)
    ET.SubElement(
        group,
        "line",
        x1=str(start[0]),
        y1=str(start[1]),
        x2=str(end[0]),
        y2=str(end[1]),
        stroke=fill,
        **{"stroke-width": "8", "stroke-linecap": "round"},
    )
    middle = ((start[0] + end[0]) // 2, (start[1] + end[1]) // 2)
    _label(group, middle[0], middle[1] - 12, f"{peer.tunnel.interface} WireGuard")
    if peer.egress_via_hub:
        _label(group, middle[0], middle[1] + 24, "mail ⇄ egress")


def _flow(svg, source, target, label: str, *, dashed: bool) -> None:
    start = (source[0] + BOX_WIDTH, source[1] + 44)
    end = (target[0], target[1] + 44)
    _line(svg, start, end, "#546e7a", label=label, dashed=dashed)


def _line(svg, start, end, colour: str, *, label: str = "", dashed: bool = False) -> None:
    attributes = {"stroke-width": "2", "marker-end": "url(#arrow)"}
    if dashed:
        attributes["stroke-dasharray"] = "6 4"
    ET.SubElement(
        svg,
        "line",
        x1=str(start[0]),
        y1=str(start[1]),
        x2=str(end[0]),
        y2=str(end[1]),
        stroke=colour,
        **attributes,
    )
    if label:
        _label(svg, (start[0] + end[0]) // 2, (start[1] + end[1]) // 2 - 6, label)


def _label(parent, x: int, y: int, text: str) -> None:
    attributes = {"font-size": "12", "text-anchor": "middle"}
    ET.SubElement(parent, "text", x=str(x), y=str(y), **attributes).text = text
