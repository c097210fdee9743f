"""Deployments as Celery tasks on a real worker over Redis: a relay host's real Postfix files
are rendered, checked on the lab host with Postfix's own tools, and activated; deployments to
one host wait for each other, deployments to different hosts run side by side; a worker killed
in the middle of a deployment leaves it to Celery beat, which concludes it from the host."""

import os
import signal
import time

import pytest

from hosts import remote, services
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
    # Either deployment to the first host may take its lock first: one of them overlaps.
    assert overlap(by_host["first"], by_host["second"]) or overlap(again, by_host["second"]), (
        "different hosts ran one after another"
    )


def wait_for_the_hosts_transaction(lab, deployment: Deployment, timeout: float = 60) -> str:
    """The state of the deployment's transaction on the host, once it has started (its folder
    is staged afresh before: a folder of the same number copied into the lab does not count)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deployment.refresh_from_db()
        if "starting the transaction" in deployment.log:
            state = lab.run(f"cat {remote.folder(deployment.pk)}/state").stdout.strip()
            if state:
                return state
        time.sleep(0.05)
    raise AssertionError(f"the transaction never started on the host:\n{deployment.log}")


@pytest.mark.django_db(transaction=True)
def test_it_concludes_a_deployment_whose_worker_was_killed_from_the_host(
    start_worker, labs, tmp_path
):
    fast = {"MAILGATE_DEPLOY_HEARTBEAT": "1", "MAILGATE_DEPLOY_LEASE": "5"}
    doomed = start_worker(**fast)
    lab = labs()
    deployment = services.deployment_queue(host=relay_host("relay", lab), trigger="api")
    assert wait_for_the_hosts_transaction(lab, deployment) == "applying"
    os.killpg(doomed.pid, signal.SIGKILL)
    killed = time.monotonic()
    schedule = str(tmp_path / "beat-schedule")
    start_worker("--beat", "--schedule", schedule, "--hostname", "survivor@%h", **fast)

    wait_until_done(deployment, timeout=120)
    print(f"concluded {time.monotonic() - killed:.1f} s after the worker was killed")
    # Never confirmed, the host restored Debian's own files; the deployment says so.
    assert deployment.status == DeploymentStatus.ROLLED_BACK, deployment.log
    assert "The host says its transaction ended rolled-back" in deployment.log
    assert "no confirmation from Mailgate: rolling back" in deployment.log
    assert b"relayhost = [smtp.provider.example]" not in lab.read("/etc/postfix/main.cf")
    assert lab.read("/etc/postfix/mailgate/sasl_passwd") is None
    assert Deployment.objects.count() == 1  # no other deployment came to free the host


@pytest.mark.django_db(transaction=True)
def test_deploy_all_starts_every_host_at_once_even_on_one_worker_process(
    start_worker, labs, settings
):
    # 20.4: a worker's process carries its share of the hosts at once (one thread each), so
    # "deploy all" takes about as long as its slowest host, not the sum of a share.
    settings.CELERY_WORKER_CONCURRENCY = 1
    start_worker(concurrency=1)
    for number in range(3):
        relay_host(f"relay{number}", labs())
    queued = services.deploy_all(trigger="api")
    wait_until_done(*queued)
    for deployment in queued:
        assert deployment.status == DeploymentStatus.SUCCEEDED, deployment.log
    first, second, third = queued
    assert overlap(first, second) and overlap(second, third) and overlap(first, third)
