"""Status items as the probes would leave them for the infrastructure of ``tests.world``, for
tests of what the page and the picture show (the probes themselves are tested against lab
hosts in ``test_hosts_probes.py``)."""

from django.utils import timezone

from gateway.models import StatusChange, StatusItem
from gateway.status import Colour


def status_item(key: str, colour: str, *, element: str = "", **fields) -> StatusItem:
    now = timezone.now()
    defaults = {"section": "Hosts", "label": key, "message": "", "fix": ""}
    return StatusItem.objects.create(
        key=key, probe=key.partition(":")[0], colour=colour, element=element,
        checked_at=now, changed_at=now, **{**defaults, **fields},
    )  # fmt: skip


def checked_world(world: dict) -> None:
    """A gateway that is fine but for one certificate, a tunnel that is down, a relay host not
    deployed yet."""
    vps, home, peer = world["vps"], world["home"], world["peer"]
    status_item(
        f"hosts:{vps.pk}:deployment",
        Colour.GREEN,
        element=f"host:{vps.pk}",
        label="vps: last deployment",
        message="deployment #4 finished successfully.",
    )
    status_item(
        f"hosts:{home.pk}:files",
        Colour.AMBER,
        element=f"host:{home.pk}",
        label="home: files on the host",
        message="3 file(s) differ from what Mailgate renders now.",
        fix="Review the plan of home and deploy it.",
    )
    status_item(
        f"tunnel:{peer.pk}",
        Colour.RED,
        element=f"peer:{peer.pk}",
        section="Tunnel",
        label="wg0: home ↔ vps",
        message="No handshake ever: the spoke has not reached the hub.",
        fix="Start the tunnel on home and let UDP 51820 in on vps's firewall.",
    )
    for port in (25, 587, 443, 993):
        status_item(
            f"gateway:{vps.pk}:port:{port}",
            Colour.GREEN,
            element=f"port:{vps.pk}:{port}",
            section="Ports",
            label=f"vps: port {port}",
            message="answers.",
        )
    status_item(
        f"gateway:{vps.pk}:tls:465",
        Colour.AMBER,
        element=f"port:{vps.pk}:465",
        section="TLS",
        label="vps: certificate for mail.family.example on port 465",
        message="Valid, but expires 2026-12-06 (5 days).",
        fix="Renewal is failing: run 'certbot renew' (or read Traefik's ACME log).",
    )
    StatusChange.objects.create(
        key=f"tunnel:{peer.pk}",
        label="wg0: home ↔ vps",
        before=Colour.GREEN,
        after=Colour.RED,
        at=timezone.now(),
        message="No handshake ever: the spoke has not reached the hub.",
    )
