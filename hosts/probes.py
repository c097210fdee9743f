"""The status probes of ``hosts`` (found by ``gateway.status``):

- ``hosts``: per host, a deployment stuck without its worker, else its last finished one, and
  over SSH whether its files are what Mailgate renders (drift: edits by hand; pending: changes
  not deployed yet);
- ``tunnel``: per spoke, the age of its last WireGuard handshake as the hub reports it
  (``wg show <interface> latest-handshakes``, read over SSH);
- ``gateway``: per gateway, from where Mailgate runs: the ports of the mail flows, the TLS
  certificate on 465 and 993 (implicit TLS) for every mail host name and on 443 for the names
  answered there (the MTA-STS and WKD hosts; the mail host names where Mailu serves 443), and
  that port 25 refuses to relay for a client that has not logged in.
"""

import shlex
from datetime import UTC, datetime, timedelta

from django.conf import settings

from gateway.bundle import RenderError
from gateway.models import Domain
from gateway.status import Colour, Finding, probe
from hosts import engine, reachability, services, transport
from hosts.choices import DeploymentStatus
from hosts.models import Deployment, Host, Tunnel, TunnelPeer
from hosts.render.context import HTTPS_PORT, MAIL_PORTS, PROXY_PROTOCOL_PORTS, SERVED_PORTS
from hosts.render.haproxy import CLIENT_SETUP_PREFIXES, MTA_STS_PREFIX, WKD_PREFIX

# The ports of the mail flows in the topology picture: inbound SMTP, submission (587 STARTTLS,
# 465 implicit TLS), IMAPS, and HTTPS (webmail, MTA-STS, WKD).
FLOW_PORTS = (25, 587, 465, 993, HTTPS_PORT)
TLS_PORTS = (HTTPS_PORT, 465, 993)  # implicit TLS: a handshake right after connecting
CERTIFICATE_WARNING = timedelta(days=14)  # certbot renews 30 days ahead: 14 left means it failed
# A spoke with traffic or a keepalive shakes hands again every two minutes (REKEY_AFTER_TIME).
HANDSHAKE_FRESH = timedelta(minutes=3)
HANDSHAKE_STALE = timedelta(minutes=15)
FINISHED = (DeploymentStatus.SUCCEEDED, DeploymentStatus.FAILED, DeploymentStatus.ROLLED_BACK)


# --- hosts: deployments and drift --------------------------------------------------------------


@probe("hosts")
def host_findings():
    for host in Host.objects.order_by("name"):
        yield _last_deployment(host)
        yield _files(host)


def _host_finding(host: Host, what: str, label: str, colour: str, message: str, fix: str = ""):
    return Finding(
        key=f"hosts:{host.pk}:{what}",
        section="Hosts",
        label=f"{host}: {label}",
        colour=colour,
        message=message,
        fix=fix,
        element=f"host:{host.pk}",
    )


def _last_deployment(host: Host) -> Finding:
    finding = (host, "deployment", "last deployment")
    stuck = engine.stale_deployments().filter(host=host).first()
    if stuck:
        return _host_finding(
            *finding,
            Colour.RED,
            f"{stuck} has shown no sign of life since {stuck.heartbeat_at:%Y-%m-%d %H:%M}: its "
            "worker stopped, and the host takes no other deployment until it is concluded.",
            "Keep Celery beat and a worker running: they conclude it from what the host reports.",
        )
    last = (
        Deployment.objects.filter(host=host, status__in=FINISHED)
        .order_by("-finished_at", "-pk")
        .first()
    )
    if last is None:
        return _host_finding(
            *finding,
            Colour.AMBER,
            "Never deployed.",
            f"Open the plan of {host} on the host list and deploy it.",
        )
    when = f"{last} finished {last.finished_at:%Y-%m-%d %H:%M}"
    if last.status == DeploymentStatus.SUCCEEDED:
        return _host_finding(*finding, Colour.GREEN, f"{when} successfully.")
    if last.status == DeploymentStatus.ROLLED_BACK:
        return _host_finding(
            *finding,
            Colour.AMBER,
            f"{when} and was rolled back: the host runs its previous files.",
            "Read the deployment's log for the failed check, correct the setting, deploy again.",
        )
    return _host_finding(
        *finding,
        Colour.RED,
        f"{when} and failed.",
        "Read the deployment's log for the failed step, correct it, deploy again.",
    )


def _files(host: Host) -> Finding:
    finding = (host, "files", "files on the host")
    if not host.ssh_host_key:
        return _host_finding(
            *finding,
            Colour.AMBER,
            "Its SSH host key is not confirmed, so Mailgate cannot read it.",
            "Open 'Host key' on the host list, compare the fingerprint and confirm it.",
        )
    try:
        plan = services.host_plan(host=host)
    except RenderError as exc:
        return _host_finding(*finding, Colour.RED, f"Cannot render its files: {exc}", str(exc))
    except transport.TransportError as exc:
        return _host_finding(
            *finding,
            Colour.RED,
            str(exc),
            f"Check that {host.ssh_address}:{host.ssh_port} runs sshd and accepts Mailgate's key.",
        )
    if plan.drift:
        paths = ", ".join(file.path for file in plan.drift)
        return _host_finding(
            *finding,
            Colour.AMBER,
            f"Changed by hand since the last deployment: {paths}.",
            "Carry the change into Mailgate if it is wanted, then deploy to restore the files.",
        )
    if plan.changes:
        return _host_finding(
            *finding,
            Colour.AMBER,
            f"{len(plan.changes)} file(s) differ from what Mailgate renders now.",
            f"Review the plan of {host} and deploy it.",
        )
    return _host_finding(*finding, Colour.GREEN, "What Mailgate renders, unchanged by hand.")


# --- tunnel: WireGuard handshakes --------------------------------------------------------------


@probe("tunnel")
def tunnel_findings():
    for tunnel in Tunnel.objects.select_related("hub").prefetch_related("peers__host"):
        peers = list(tunnel.peers.all())
        if peers:
            yield from _handshakes(tunnel, peers)


def _handshakes(tunnel: Tunnel, peers: list[TunnelPeer]):
    try:
        now, latest = _latest_handshakes(tunnel)
    except transport.TransportError as exc:
        for peer in peers:
            yield _peer_finding(
                tunnel,
                peer,
                Colour.RED,
                f"Cannot read the tunnel on {tunnel.hub}: {exc}",
                f"Deploy {tunnel.hub}; its {tunnel.interface} must be up "
                f"(systemctl start wg-quick@{tunnel.interface}).",
            )
        return
    for peer in peers:
        yield _handshake_finding(tunnel, peer, now, latest.get(peer.public_key))


def _latest_handshakes(tunnel: Tunnel) -> tuple[int, dict[str, int]]:
    """The hub's clock and, per spoke's public key, its last handshake (0: never)."""
    interface = shlex.quote(tunnel.interface)
    with transport.Session(tunnel.hub) as session:
        result = session.run(f"date +%s && wg show {interface} latest-handshakes", timeout=30)
    if not result.ok:
        raise transport.TransportError(result.output.strip() or f"exit status {result.status}")
    clock, *lines = result.stdout.split("\n")
    pairs = (line.split("\t") for line in lines if "\t" in line)
    return int(clock), {key: int(epoch) for key, epoch in pairs}


def _handshake_finding(tunnel: Tunnel, peer: TunnelPeer, now: int, epoch: int | None) -> Finding:
    if epoch is None:
        return _peer_finding(
            tunnel,
            peer,
            Colour.RED,
            f"{tunnel.hub}'s {tunnel.interface} does not know this spoke's key.",
            f"Deploy {tunnel.hub}, then {peer.host}, so both have the current keys.",
        )
    if epoch == 0:
        return _peer_finding(
            tunnel,
            peer,
            Colour.RED,
            "No handshake ever: the spoke has not reached the hub.",
            f"Start the tunnel on {peer.host} and let UDP {tunnel.listen_port} in on "
            f"{tunnel.hub}'s firewall.",
        )
    age = timedelta(seconds=max(now - epoch, 0))
    colour = (
        Colour.GREEN
        if age <= HANDSHAKE_FRESH
        else Colour.AMBER
        if age <= HANDSHAKE_STALE
        else Colour.RED
    )
    fix = "" if colour == Colour.GREEN else f"Check that the tunnel on {peer.host} is up."
    return _peer_finding(tunnel, peer, colour, f"Last handshake {_age(age)} ago.", fix)


def _peer_finding(tunnel, peer, colour: str, message: str, fix: str = "") -> Finding:
    return Finding(
        key=f"tunnel:{peer.pk}",
        section="Tunnel",
        label=f"{tunnel.interface}: {peer.host} ↔ {tunnel.hub}",
        colour=colour,
        message=message,
        fix=fix,
        element=f"peer:{peer.pk}",
    )


def _age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


# --- gateway: ports, TLS and open relay, seen from outside ------------------------------------


@probe("gateway")
def gateway_findings():
    names, served = _mail_hostnames(), _served_ports()
    for gateway in Host.objects.filter(is_gateway=True).order_by("name"):
        address = str(gateway.public_ipv4 or gateway.public_ipv6 or "")
        if not address:
            continue  # Host.clean() requires one; an older row may lack it
        for port in FLOW_PORTS:
            yield _port(gateway, address, port)
        for port in TLS_PORTS:
            for name in _tls_names(port, names or [gateway.fqdn or address], served):
                yield _tls(gateway, address, port, name)
        yield _relay(gateway, address)


def _mail_hostnames() -> list[str]:
    rows = Domain.objects.filter(enabled=True).order_by("mail_hostname")
    return list(rows.values_list("mail_hostname", flat=True).distinct())


def _served_ports() -> tuple[int, ...]:
    """What the mail server serves through the gateway (all the ports until there is one)."""
    backend = Host.objects.filter(is_mailserver=True).values_list("mail_backend", flat=True)
    return SERVED_PORTS.get(backend.first(), PROXY_PROTOCOL_PORTS)


def _tls_names(port: int, mail_names: list[str], served: tuple[int, ...]) -> list[str]:
    """The names a client asks for on ``port``: the mail host names where the mail server
    answers it; on 443 also every domain's MTA-STS, WKD and client setup hosts, which the
    gateway answers (a sender fetches the MTA-STS policy only over valid TLS)."""
    if port != HTTPS_PORT:
        return mail_names
    domains = Domain.objects.filter(enabled=True).order_by("name").values_list("name", flat=True)
    prefixes = (MTA_STS_PREFIX, WKD_PREFIX, *CLIENT_SETUP_PREFIXES)
    web = [f"{prefix}{domain}" for domain in domains for prefix in prefixes]
    return [*(mail_names if HTTPS_PORT in served else []), *web]


def _port(gateway: Host, address: str, port: int) -> Finding:
    error = reachability.port_error(address, port)
    service = MAIL_PORTS.get(port, "https")
    return Finding(
        key=f"gateway:{gateway.pk}:port:{port}",
        section="Ports",
        label=f"{gateway}: port {port} ({service})",
        colour=Colour.RED if error else Colour.GREEN,
        message=f"{address}:{port} {'does not answer: ' + error if error else 'answers'}.",
        fix=f"Deploy {gateway} and open tcp/{port} in its provider's firewall." if error else "",
        element=f"port:{gateway.pk}:{port}",
    )


def _tls(gateway: Host, address: str, port: int, name: str) -> Finding:
    finding = {
        "key": f"gateway:{gateway.pk}:tls:{port}:{name}",
        "section": "TLS",
        "label": f"{gateway}: certificate for {name} on port {port}",
        "element": f"port:{gateway.pk}:{port}",
    }
    cafile = settings.MAILGATE_STATUS_CA_FILE
    try:
        certificate = reachability.tls_certificate(address, port, name, cafile=cafile)
    except OSError as exc:
        return Finding(
            **finding,
            colour=Colour.RED,
            message=f"No TLS handshake on {address}:{port}: {exc}.",
            fix=f"Deploy {gateway} and the mail server, and check that port {port} is open.",
        )
    left = certificate.expires_at - datetime.now(UTC)
    held = (
        f"issued by {certificate.issuer}, expires {certificate.expires_at:%Y-%m-%d} "
        f"({left.days} days)"
    )
    if certificate.trust_error:
        return Finding(
            **finding,
            colour=Colour.RED,
            message=f"Not trusted: {certificate.trust_error}; {held}.",
            fix=f"Get a certificate for {name} from Let's Encrypt (certbot or Traefik's ACME).",
        )
    if left <= CERTIFICATE_WARNING:
        return Finding(
            **finding,
            colour=Colour.AMBER,
            message=f"Valid, but {held}.",
            fix="Renewal is failing: run 'certbot renew' (or read Traefik's ACME log).",
        )
    return Finding(**finding, colour=Colour.GREEN, message=f"Valid, {held}.")


def _relay(gateway: Host, address: str) -> Finding:
    recipient = settings.MAILGATE_RELAY_PROBE_RECIPIENT
    answer = reachability.relay_answer(address, recipient)
    said = f"{answer.stage}: {answer.code} {answer.text}".strip()
    finding = {
        "key": f"gateway:{gateway.pk}:open-relay",
        "section": "Ports",
        "label": f"{gateway}: open relay",
        "element": f"port:{gateway.pk}:25",
    }
    if answer.relays:
        return Finding(
            **finding,
            colour=Colour.RED,
            message=f"It accepted mail for {recipient} without a login ({said}): an open relay.",
            fix="Remove public networks from the hosts' LAN networks (mynetworks) and deploy.",
        )
    if answer.refuses:
        return Finding(
            **finding,
            colour=Colour.GREEN,
            message=f"Relaying to {recipient} without a login is refused ({said}).",
        )
    return Finding(
        **finding,
        colour=Colour.AMBER,
        message=f"Could not tell whether it relays ({said}).",
        fix=f"Check that port 25 of {gateway} answers; the test runs again on the next check.",
    )
