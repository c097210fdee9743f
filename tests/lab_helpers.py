"""Checks the lab tests share: nothing of a lab is left after ``lab down``, the status page
is green against a running lab, a forced renewal of the mail server's certificate is served, and
the home server is adopted back with nothing lost."""

import subprocess
import time

import pytest
from django.test import override_settings

from gateway import services as gateway_services
from gateway.models import Domain, StatusItem
from hosts import services as host_services
from hosts.choices import DeploymentTrigger
from hosts.models import Host, Relay, Tunnel
from lab import acme, world
from lab import adopted as adopted_lab
from lab.hosts import LabHost


def namespaces(prefix: str) -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith(f"{prefix}-")]


def assert_adopted(lab) -> None:
    """The home server adopted back over SSH and deployed, nothing lost (docs/adoption.md,
    "Proven in the lab"). It deletes rows (the mailboxes' keys with them, which the gateway
    still serves): a lab test runs it last."""
    adopted = adopted_lab.prove_adoption(lab)
    print(f"{adopted.ok} {adopted.name}\n{adopted.evidence}")
    assert adopted.ok, adopted.evidence


def assert_nothing_left(folder, prefix: str) -> None:
    assert namespaces(prefix) == []
    assert not folder.exists()
    assert not Host.objects.exists() and not Relay.objects.exists()
    assert not Tunnel.objects.exists() and not Domain.objects.exists()


def assert_status_is_green(folder) -> None:
    """The status page's probes, run from this machine against the lab's gateway: ports, TLS
    (trusting the lab CA), no open relay, the tunnel's handshake, deployments and drift."""
    with override_settings(MAILGATE_STATUS_CA_FILE=str(folder / "ca.pem")):
        gateway_services.status_refresh()
    items = StatusItem.objects.filter(section__in=["Hosts", "Tunnel", "Ports", "TLS"])
    colours = {item.label: (item.colour, item.message) for item in items}
    assert len(colours) > 10, colours
    assert [item for item in colours.items() if item[1][0] != "green"] == []


def assert_a_forced_renewal_is_served(lab, ports: tuple[str, ...], seconds: float = 60) -> None:
    """A forced renewal of the mail server's certificate (under its own name) is an ordinary
    deployment: each of ``ports`` serves the new serial, within ``seconds`` (Mailu's front
    restarts to take it)."""
    home = Host.objects.get(name=world.NAMES["home"])
    certificate = home.certificates.get(name=world.MAIL_HOST)
    before = certificate.current
    renewed = acme.renew(lab.made["acme"], certificate)
    assert renewed.outcome == "issued", renewed.message
    assert renewed.serial != before.serial
    deployment = host_services.deployment_run_here(host=home, trigger=DeploymentTrigger.LAB)
    assert deployment.status == "succeeded", deployment.log
    ca, deadline = str(lab.folder / "ca.pem"), time.monotonic() + seconds
    for port in ports:
        seen = world.probe(lab.hosts["internet"], "certificate", world.MAIL_HOST, port, ca)
        while seen.get("serial") != renewed.serial and time.monotonic() < deadline:
            time.sleep(1)
            seen = world.probe(lab.hosts["internet"], "certificate", world.MAIL_HOST, port, ca)
        assert seen.get("serial") == renewed.serial, (port, seen)
        print(f"{world.MAIL_HOST}:{port} serves the renewed serial {renewed.serial}")


# What a mail server built by hand keeps of its own, for the adoption tests over SSH.
MAIL_HOST_FILES = ("/etc/postfix", "/etc/dovecot", "/etc/wireguard")


@pytest.fixture(name="lab")
def mail_host_fixture():
    """A lab host with sshd whose Postfix, Dovecot and WireGuard folders are its own."""
    host = LabHost.create(private_dirs=MAIL_HOST_FILES)
    yield host
    host.close()


def fingerprint(host: LabHost) -> str:
    """Every file of those folders with its checksum: what "nothing was written" compares."""
    folders = " ".join(MAIL_HOST_FILES)
    return host.run(f"find {folders} -type f -exec sha256sum {{}} + | sort").stdout
