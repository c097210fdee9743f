"""Deployments as Celery tasks on a real worker over Redis: a relay host's real Postfix files
are rendered, checked on the lab host with Postfix's own tools, and activated; deployments to
one host wait for each other, deployments to different hosts run side by side."""

import time

import pytest

from hosts import services
from hosts.choices import DeploymentStatus
from hosts.lab import LabHost
from hosts.models import Deployment, Host, Relay

# The lab host has no init system (systemd cannot run in a network namespace): this stand-in
# records what would be reloaded and takes a second to do it, like a real reload.
FAKE_SYSTEMCTL = """#!/bin/sh
echo "systemctl $*" >> /var/lib/mailgate/systemctl.log
sleep 1
"""
PRIVATE = ("/etc/postfix", "/var/spool/postfix", "/var/lib/mailgate", "/usr/local/sbin")


@pytest.fixture
def labs():
    made = []

    def make() -> LabHost:
        lab = LabHost.create(private_dirs=PRIVATE)
        made.append(lab)
        systemctl = lab.root / "private/usr/local/sbin/systemctl"
        systemctl.write_text(FAKE_SYSTEMCTL)
        systemctl.chmod(0o755)
        return lab

    yield make
    for lab in made:
        lab.close()


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


def wait_until_done(*deployments: Deployment, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    for deployment in deployments:
        while True:
            deployment.refresh_from_db()
            if deployment.status not in (DeploymentStatus.PENDING, DeploymentStatus.RUNNING):
                break
            assert time.monotonic() < deadline, f"{deployment} is still {deployment.status}"
            time.sleep(0.2)


def overlap(first: Deployment, second: Deployment) -> bool:
    return max(first.started_at, second.started_at) < min(first.finished_at, second.finished_at)


@pytest.mark.django_db(transaction=True)
def test_a_worker_deploys_a_relay_hosts_real_postfix_files(start_worker, labs, owner):
    start_worker()
    lab = labs()
    host = relay_host("relay", lab)
    deployment = services.deployment_queue(host=host, trigger="api", user=owner)
    wait_until_done(deployment)
    assert deployment.status == DeploymentStatus.SUCCEEDED, deployment.log
    assert b"relayhost = [smtp.provider.example]:587" in lab.read("/etc/postfix/main.cf")
    assert lab.run(
        "postmap -q '[smtp.provider.example]:587' hash:/etc/postfix/mailgate/sasl_passwd"
    ).stdout == ("family@provider.example:relay-secret\n")
    assert (
        "systemctl reload-or-restart postfix"
        in lab.read("/var/lib/mailgate/systemctl.log").decode()
    )
    assert "relay-secret" not in deployment.log
    assert deployment.triggered_by == owner


@pytest.mark.django_db(transaction=True)
def test_one_host_waits_and_different_hosts_deploy_in_parallel(start_worker, labs):
    start_worker(concurrency=3)
    first_lab, second_lab = labs(), labs()
    first = relay_host("first", first_lab)
    relay_host("second", second_lab)
    queued = services.deploy_all(trigger="api")
    again = services.deployment_queue(host=first, trigger="api")
    wait_until_done(*queued, again)
    by_host = {deployment.host.name: deployment for deployment in queued}
    for deployment in (*queued, again):
        assert deployment.status == DeploymentStatus.SUCCEEDED, deployment.log
    assert not overlap(by_host["first"], again), "two deployments ran on one host at once"
    assert overlap(by_host["first"], by_host["second"]), "different hosts ran one after another"
