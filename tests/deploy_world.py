"""Lab hosts for deployment tests: a relay host in a network namespace, with a stand-in for the
init system that a namespace cannot run."""

from hosts.models import Host, Relay
from lab.hosts import LabHost

# The lab host has no init system (systemd cannot run in a network namespace): this stand-in
# records what would be reloaded and takes a second to do it, like a real reload.
FAKE_SYSTEMCTL = """#!/bin/sh
echo "systemctl $*" >> /var/lib/mailgate/systemctl.log
sleep 1
"""
PRIVATE = ("/etc/postfix", "/var/spool/postfix", "/var/lib/mailgate", "/usr/local/sbin")


def relay_host(name: str, lab: LabHost) -> Host:
    relay, _ = Relay.objects.get_or_create(
        name="provider",
        defaults={
            "kind": "generic",
            "host": "smtp.provider.example",
            "port": 587,
            "username": "family@provider.example",
            "password": "relay-secret",
        },
    )
    return Host.objects.create(
        name=name,
        is_relay=True,
        relay=relay,
        lan_networks=["192.168.1.0/24"],
        ssh_address=lab.address,
        ssh_private_key=lab.client_key,
        ssh_host_key=lab.host_key,
    )


def lab_with_relay_files() -> LabHost:
    lab = LabHost.create(private_dirs=PRIVATE)
    systemctl = lab.root / "private/usr/local/sbin/systemctl"
    systemctl.write_text(FAKE_SYSTEMCTL)
    systemctl.chmod(0o755)
    return lab
