"""Deployments as Celery tasks on a real worker over Redis: a relay host's real Postfix files
are rendered, checked on the lab host with Postfix's own tools, and activated; deployments to
one host wait for each other, deployments to different hosts run side by side."""

import time

import pytest

from hosts import services
from hosts.choices import DeploymentStatus
from hosts.models import Deployment
from tests.deploy_world import relay_host


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
