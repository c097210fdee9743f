"""The deploy engine against a real sshd in a network namespace (``lab.hosts``): pinned host
keys, atomic apply, no-op re-apply, checks before activation, rollback, a cut connection, the
per-host lock and rollback to an earlier deployment."""

import dataclasses
import re
import subprocess
import threading
import time
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ValidationError
from django.utils import timezone

from gateway.bundle import Bundle, File, Unit
from hosts import engine, remote, services, transport
from hosts.choices import DeploymentStatus, DeploymentTrigger, FileChange
from hosts.models import Deployment, DeploymentFile, Host
from hosts.plan import make_plan
from lab.hosts import LabHost

PROBE = "/srv/mailgate-probe"


@pytest.fixture
def lab():
    host = LabHost.create(private_dirs=(PROBE, "/var/lib/mailgate"))
    yield host
    host.close()


@pytest.fixture
def host(db, lab):
    return Host.objects.create(
        name="probe",
        is_relay=True,
        ssh_address=lab.address,
        ssh_private_key=lab.client_key,
        ssh_host_key=lab.host_key,
    )


def bundle(version: str = "v1", *, changed: str = "abc", check="true", activate="true") -> Bundle:
    files = tuple(
        File(
            f"{PROBE}/{name}.conf",
            f"# {version if name in changed else 'v1'} {name}\n".encode(),
            mode=0o640,
        )
        for name in "abc"
    )
    return Bundle(
        host="probe",
        units=(
            Unit(
                "probe",
                files,
                checks=(f'test -s "$STAGE"{PROBE}/a.conf && {check}',),
                activate=(f"echo activated >> {PROBE}/activations.log; {activate}",),
            ),
        ),
    )


def deploy(host, the_bundle, trigger=DeploymentTrigger.CLI) -> Deployment:
    deployment = Deployment.objects.create(host=host, trigger=trigger)
    engine.run(deployment, bundle=the_bundle)
    deployment.refresh_from_db()
    return deployment


def contents(lab) -> dict[str, bytes | None]:
    return {name: lab.read(f"{PROBE}/{name}.conf") for name in "abc"}


def inodes(lab) -> dict[str, str]:
    output = lab.run(f"stat -c '%n %i' {PROBE}/*.conf").stdout.split("\n")
    return dict(line.split() for line in output if line)


def logins(lab) -> int:
    return (lab.root / "sshd.log").read_text().count("Accepted publickey")


def test_it_fetches_the_host_key_for_the_owner_to_confirm(db, lab):
    host = Host.objects.create(name="new", is_relay=True, ssh_address=lab.address)
    key, fingerprint = services.host_scan_key(host=host)
    assert key == lab.host_key
    printed = lab.run(f"ssh-keygen -lf {lab.root / 'host_key.pub'}").stdout.split()[1]
    assert fingerprint == printed
    with pytest.raises(ValidationError, match="does not match"):
        services.host_confirm_key(host=host, key=key, fingerprint="SHA256:something-else")
    services.host_confirm_key(host=host, key=key, fingerprint=fingerprint)
    host.refresh_from_db()
    assert host.ssh_host_key == lab.host_key


def test_it_writes_nothing_to_a_host_whose_key_is_not_confirmed(host, lab):
    Host.objects.filter(pk=host.pk).update(ssh_host_key="")
    host.refresh_from_db()
    deployment = deploy(host, bundle())
    assert deployment.status == DeploymentStatus.FAILED
    assert "not confirmed" in deployment.log
    assert contents(lab) == {"a": None, "b": None, "c": None}


def test_it_refuses_a_swapped_host_key_and_writes_nothing(host, lab):
    impostor = LabHost.create(private_dirs=(PROBE, "/var/lib/mailgate"))
    try:
        Host.objects.filter(pk=host.pk).update(ssh_host_key=impostor.host_key)
        host.refresh_from_db()
        deployment = deploy(host, bundle())
    finally:
        impostor.close()
    assert deployment.status == DeploymentStatus.FAILED
    assert "different SSH host key" in deployment.log and "Nothing was written" in deployment.log
    assert contents(lab) == {"a": None, "b": None, "c": None}


def test_it_applies_then_a_second_apply_touches_nothing(host, lab):
    first = deploy(host, bundle())
    assert first.status == DeploymentStatus.SUCCEEDED, first.log
    assert contents(lab)["b"] == b"# v1 b\n"
    assert lab.run(f"stat -c %a {PROBE}/a.conf").stdout.strip() == "640"
    assert {f.change for f in first.files.all()} == {FileChange.CREATED}
    assert "+ [probe] test -s" in first.log and "+ committed" in first.log
    before, logins_before = inodes(lab), logins(lab)

    second = deploy(host, bundle())
    assert second.status == DeploymentStatus.SUCCEEDED
    assert "Nothing to change." in second.log
    assert {f.change for f in second.files.all()} == {FileChange.UNCHANGED}
    assert inodes(lab) == before
    assert logins(lab) == logins_before + 1  # one connection
    assert lab.read(f"{PROBE}/activations.log") == b"activated\n"  # activated once, by the first


def test_it_writes_only_the_file_that_changed(host, lab):
    deploy(host, bundle())
    before = inodes(lab)
    deployment = deploy(host, bundle("v2", changed="b"))
    assert deployment.status == DeploymentStatus.SUCCEEDED, deployment.log
    changes = {f.path.rsplit("/", 1)[1]: f.change for f in deployment.files.all()}
    assert changes == {"a.conf": "unchanged", "b.conf": "changed", "c.conf": "unchanged"}
    after = inodes(lab)
    assert after[f"{PROBE}/a.conf"] == before[f"{PROBE}/a.conf"]
    assert after[f"{PROBE}/b.conf"] != before[f"{PROBE}/b.conf"]
    diff = deployment.files.get(path=f"{PROBE}/b.conf").diff
    assert "-# v1 b" in diff and "+# v2 b" in diff


def test_a_failed_check_activates_nothing_and_keeps_the_old_files(host, lab):
    deploy(host, bundle())
    deployment = deploy(host, bundle("v2", check="echo 'bad config' >&2; false"))
    assert deployment.status == DeploymentStatus.FAILED
    assert "bad config" in deployment.log and "nothing was activated" in deployment.log
    assert contents(lab) == {name: f"# v1 {name}\n".encode() for name in "abc"}
    assert lab.read(f"{PROBE}/activations.log") == b"activated\n"
    assert lab.run(f"ls {remote.ROOT}").stdout == ""  # the staging folder is gone


def test_a_first_deployment_keeps_the_folders_above_its_own_reachable(host, lab, monkeypatch):
    """The staging folder is private, but a first deployment that makes /var/lib/mailgate must
    not make it private too: nginx's workers read the WKD tree and the ACME challenges there."""
    monkeypatch.setattr(remote, "ROOT", "/var/lib/mailgate/fresh/deployments")
    deployment = deploy(host, bundle())
    assert deployment.status == DeploymentStatus.SUCCEEDED, deployment.log
    modes = lab.run(f"stat -c %a /var/lib/mailgate/fresh {remote.ROOT}").stdout.split()
    assert modes == ["755", "700"]


def test_a_failed_activation_restores_and_reactivates_the_old_files(host, lab):
    deploy(host, bundle())
    deployment = deploy(host, bundle("v2", activate=f"grep -q v1 {PROBE}/a.conf"))
    assert deployment.status == DeploymentStatus.ROLLED_BACK, deployment.log
    assert "restoring the previous files" in deployment.log
    assert contents(lab) == {name: f"# v1 {name}\n".encode() for name in "abc"}
    assert lab.read(f"{PROBE}/activations.log") == b"activated\nactivated\nactivated\n"


def test_a_deployment_whose_folder_disappears_fails_instead_of_waiting(host, lab):
    # As when a mount over /var/lib/mailgate goes away under a running transaction.
    deployment = deploy(host, bundle(activate=f"rm -rf {remote.ROOT}/*"))
    assert deployment.status == DeploymentStatus.FAILED, deployment.log
    assert "disappeared while it ran: check the host" in deployment.log


def test_a_cut_connection_ends_in_the_old_files_and_is_recovered(host, lab, monkeypatch):
    monkeypatch.setattr(remote, "COMMIT_WAIT", 3)
    deploy(host, bundle())
    deployment = Deployment.objects.create(host=host, trigger=DeploymentTrigger.CLI)
    cut = threading.Thread(target=cut_when_activating, args=(lab,))
    cut.start()
    status = engine.run(deployment, bundle=bundle("v2", activate="sleep 1.5"))
    cut.join()
    deployment.refresh_from_db()
    assert status == DeploymentStatus.RUNNING
    assert "needs recovery" in deployment.log

    # Unconfirmed, the host restores the old files by itself.
    assert wait_for_state(lab, deployment) == "rolled-back"
    assert contents(lab) == {name: f"# v1 {name}\n".encode() for name in "abc"}
    lab.start_sshd()
    assert engine.recover(deployment) == DeploymentStatus.ROLLED_BACK
    deployment.refresh_from_db()
    assert "no confirmation from Mailgate" in deployment.log


def wait_for_state(lab, deployment, timeout=30) -> str:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline and state not in remote.FINAL_STATES:
        time.sleep(0.2)
        state = lab.run(f"cat {remote.folder(deployment.pk)}/state").stdout.strip()
    return state


def cut_when_activating(lab) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if "activating" in lab.run(f"cat {remote.ROOT}/*/log 2>/dev/null").stdout:
            lab.stop_sshd()
            return
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_the_lock_lets_one_deployment_per_host_run(host, lab):
    first = Deployment.objects.create(host=host, trigger=DeploymentTrigger.CLI)
    worker = threading.Thread(
        target=engine.run, args=(first,), kwargs={"bundle": bundle(activate="sleep 1")}
    )
    worker.start()
    deadline = time.monotonic() + 10
    while not Deployment.objects.filter(pk=first.pk, status="running").exists():
        assert time.monotonic() < deadline, "the first deployment never started"
        time.sleep(0.01)
    second = Deployment.objects.create(host=host, trigger=DeploymentTrigger.CLI)
    with pytest.raises(engine.Busy):
        engine.run(second, bundle=bundle("v2"))
    worker.join()
    second.refresh_from_db()
    assert second.status == DeploymentStatus.PENDING
    assert engine.run(second, bundle=bundle("v2")) == DeploymentStatus.SUCCEEDED


def test_it_rolls_back_to_an_earlier_deployment(host, lab):
    first = deploy(host, bundle())
    deploy(host, bundle("v2"))
    assert contents(lab)["a"] == b"# v2 a\n"
    rollback = Deployment.objects.create(host=host, trigger="rollback", rollback_of=first)
    assert engine.run(rollback) == DeploymentStatus.SUCCEEDED
    assert contents(lab) == {name: f"# v1 {name}\n".encode() for name in "abc"}


def test_a_rollback_deploys_the_units_exactly_as_they_were(host, lab):
    shown = dataclasses.replace(bundle().units[0], instructions="Log in to the Bridge once.")
    first = deploy(host, Bundle(host="probe", units=(shown,)))
    assert engine.stored_bundle(first).units == (shown,)


def test_it_masks_the_hosts_secrets_in_the_log(host, lab):
    secret = host.ssh_private_key.splitlines()[1]
    deployment = deploy(host, bundle(activate=f"echo 'leak {secret}'"))
    assert secret not in deployment.log
    assert re.search(r"leak \*{8}", deployment.log)


def test_it_masks_a_secret_that_arrives_in_pieces(host, lab):
    secret = host.ssh_private_key.splitlines()[1]
    half = len(secret) // 2
    lab.run(f"printf '%s' '{secret}' > {PROBE}/secret")  # not in any command Mailgate logs
    # The halves a second apart: the engine reads (and could log) the first one alone.
    file = f"{PROBE}/secret"
    slow = f"printf 'leak '; head -c {half} {file}; sleep 1; tail -c +{half + 1} {file}"
    deployment = deploy(host, bundle(activate=slow))
    assert deployment.status == DeploymentStatus.SUCCEEDED, deployment.log
    assert secret[:half] not in deployment.log and re.search(r"leak \*{8}", deployment.log)


def test_a_change_is_one_command_on_the_host(host, lab, monkeypatch):
    deploy(host, bundle())
    commands = []
    for name in ("run", "stream"):
        real = getattr(transport.Session, name)
        monkeypatch.setattr(
            transport.Session,
            name,
            lambda self, command, *args, _real=real, **kwargs: (
                commands.append(command) or _real(self, command, *args, **kwargs)
            ),
        )
    deployment = deploy(host, bundle("v2", changed="b"))
    assert deployment.status == DeploymentStatus.SUCCEEDED, deployment.log
    # Survey, staging, checks, the transaction and its commit: one conversation, no polling.
    assert len(commands) == 1 and commands[0].startswith("bash -c")


@pytest.mark.django_db(transaction=True)
def test_the_log_shows_the_transaction_while_it_runs(host, lab):
    deploy(host, bundle())
    deployment = Deployment.objects.create(host=host, trigger=DeploymentTrigger.CLI)
    slow = bundle("v2", activate='echo "half $(echo way)"; sleep 2')
    worker = threading.Thread(target=engine.run, args=(deployment,), kwargs={"bundle": slow})
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while "half way" not in Deployment.objects.get(pk=deployment.pk).log:
            assert time.monotonic() < deadline, Deployment.objects.get(pk=deployment.pk).log
            time.sleep(0.1)
        assert Deployment.objects.get(pk=deployment.pk).status == DeploymentStatus.RUNNING
    finally:
        worker.join()
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.SUCCEEDED, deployment.log


def test_it_reports_an_unreachable_host(host, lab):
    lab.stop_sshd()
    deployment = deploy(host, bundle())
    assert deployment.status == DeploymentStatus.FAILED
    assert "Cannot connect" in deployment.log and "Nothing was written" in deployment.log


def test_the_transport_runs_commands_with_a_timeout(host, lab):
    with transport.Session(host) as session:
        assert session.run("echo out; echo err >&2; exit 3") == transport.RemoteResult(
            3, "out\n", "err\n"
        )
        with pytest.raises(transport.TransportError, match="timed out"):
            session.run("sleep 5", timeout=0.5)


def test_it_reports_drift_and_shows_the_hosts_own_edit(host, lab):
    deploy(host, bundle())
    lab.run(f"echo '# edited by hand' >> {PROBE}/c.conf")
    deployment = deploy(host, bundle())
    assert f"Drift: {PROBE}/c.conf" in deployment.log
    row = deployment.files.get(path=f"{PROBE}/c.conf")
    assert row.change == FileChange.CHANGED and "-# edited by hand" in row.diff
    assert contents(lab)["c"] == b"# v1 c\n"


def silent(host, settings) -> Deployment:
    """A running deployment whose worker has not been heard of for longer than the lease."""
    settings.MAILGATE_DEPLOY_LEASE = 30
    return Deployment.objects.create(
        host=host,
        trigger=DeploymentTrigger.CLI,
        status=DeploymentStatus.RUNNING,
        heartbeat_at=timezone.now() - timedelta(seconds=31),
    )


def test_a_crashed_workers_lock_is_taken_over(host, lab, settings):
    stale = silent(host, settings)
    waiting = Deployment.objects.create(host=host, trigger=DeploymentTrigger.CLI)
    with pytest.raises(engine.Busy):
        engine.run(waiting, bundle=bundle())
    stale.refresh_from_db()
    assert stale.status == DeploymentStatus.FAILED
    assert "never started" in stale.log
    assert engine.run(waiting, bundle=bundle()) == DeploymentStatus.SUCCEEDED


def test_it_recovers_a_silent_deployment_without_waiting_for_another(host, lab, settings):
    stale = silent(host, settings)
    assert engine.recover_stale() == [DeploymentStatus.FAILED]
    stale.refresh_from_db()
    assert "never started" in stale.log
    assert engine.recover_stale() == []  # concluded: nothing left to recover


def test_it_fails_a_deployment_that_breaks_unexpectedly_with_its_traceback(host, lab):
    secret = File(f"{PROBE}/secret.conf", b"password = s3cret-value\n", secret=True)
    with_secret = Bundle("probe", (Unit("probe", (secret,), activate=("true",)),))
    first = deploy(host, with_secret)
    # Its stored bytes were encrypted with a key that has since been removed.
    retired = Fernet(Fernet.generate_key()).encrypt(b"password = s3cret-value\n")
    DeploymentFile.objects.filter(deployment=first).update(content=retired)
    rollback = Deployment.objects.create(host=host, trigger="rollback", rollback_of=first)
    assert engine.run(rollback) == DeploymentStatus.FAILED
    rollback.refresh_from_db()
    assert "Traceback (most recent call last)" in rollback.log and "InvalidToken" in rollback.log
    assert "nothing was changed" in rollback.log and "s3cret-value" not in rollback.log
    again = Deployment.objects.create(host=host, trigger=DeploymentTrigger.CLI)
    assert engine.run(again, bundle=bundle()) == DeploymentStatus.SUCCEEDED  # the host is free


def test_it_leaves_a_deployment_that_is_no_longer_pending_as_it_is(host, lab):
    done = Deployment.objects.create(
        host=host, trigger=DeploymentTrigger.CLI, status=DeploymentStatus.FAILED
    )
    assert engine.run(done, bundle=bundle()) == DeploymentStatus.FAILED  # a task delivered again
    assert contents(lab) == {"a": None, "b": None, "c": None}


def test_it_deploys_only_the_plan_that_was_shown(host, lab):
    with transport.Session(host) as session:
        shown = make_plan(host, bundle(), session)
    deployment = Deployment.objects.create(host=host, trigger="ui", plan_digest=shown.digest)
    assert engine.run(deployment, bundle=bundle("v2", changed="b")) == DeploymentStatus.FAILED
    deployment.refresh_from_db()
    assert (
        "changed since it was shown" in deployment.log and "Nothing was written" in deployment.log
    )
    assert contents(lab) == {"a": None, "b": None, "c": None}
    seen = Deployment.objects.create(host=host, trigger="ui", plan_digest=shown.digest)
    assert engine.run(seen, bundle=bundle()) == DeploymentStatus.SUCCEEDED


@pytest.mark.parametrize("name", ["APPLY", "TRANSACTION"])
def test_the_engines_own_scripts_pass_shellcheck(name, tmp_path):
    script = tmp_path / f"{name}.sh"
    script.write_text(getattr(remote, name))
    checked = subprocess.run(
        ["shellcheck", "--shell=bash", str(script)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout
