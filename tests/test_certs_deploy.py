"""Certificates reach their hosts through the normal engine: in the host's bundle, where
Postfix, Dovecot and nginx read them, or Mailu's front (its certs volume), checked on the staged
copy (the chain verifies, the key is the certificate's) before anything is activated."""

import pytest

from certs import deploy, issuer, services
from certs.choices import Outcome
from certs.models import Certificate, Issuance
from gateway.bundle import Bundle
from hosts import engine
from hosts.checks import run_check, run_checks
from hosts.choices import DeploymentStatus, DeploymentTrigger
from hosts.models import Deployment, Host
from hosts.render import mailu, render_host
from hosts.render.context import load_context
from lab.ca import LabCA
from lab.hosts import LabHost
from tests.certs_world import (  # noqa: F401 (fixtures)
    pebble_fixture,
    push_to,
    world_fixture,
    zone_fixture,
)
from tests.deploy_world import FAKE_SYSTEMCTL

LIVE = "/etc/letsencrypt/live"
# A stand-in for Docker on the lab host: it logs its calls, and its front is running.
FAKE_DOCKER = """#!/bin/sh
echo "docker $*" >> /var/lib/mailgate/docker.log
case "$*" in *" ps "*) echo front ;; esac
"""


@pytest.fixture
def issued(world, pebble, other, zone):
    push_to(other, zone)
    result = services.certificates_renew()
    assert {i.outcome for i in result} == {Outcome.ISSUED}, [i.message for i in result]
    return result


@pytest.fixture
def mailu_issued(world, pebble, other, zone) -> Issuance:
    """The home server on Mailu: Pebble's one certificate for all of its HOSTNAMES."""
    Host.objects.filter(pk=world["home"].pk).update(mail_backend="mailu")
    push_to(other, zone)
    result = services.certificates_renew()
    assert {i.outcome for i in result} == {Outcome.ISSUED}, [i.message for i in result]
    (issuance,) = [i for i in result if i.certificate.purpose == "mailu"]
    assert issuance.names == ["mail.family.example", "mail.other.example"]
    return issuance


def test_it_bundles_each_certificate_where_postfix_dovecot_and_nginx_read_them(
    world, issued, tmp_path
):
    home = render_host(world["home"])
    unit = home.unit("certificates")
    for name in ("mail.family.example", "mail.other.example"):
        key = home.file(f"{LIVE}/{name}/privkey.pem")
        assert key.secret and key.mode == 0o600
        for part in ("fullchain", "cert", "chain"):
            assert not home.file(f"{LIVE}/{name}/{part}.pem").secret
    assert "systemctl reload-or-restart postfix" in unit.activate
    assert any("postmap -F" in step for step in unit.activate)  # the SNI map holds the files
    vps = render_host(world["vps"])
    assert vps.unit("certificates").activate == ("systemctl reload-or-restart nginx",)
    assert vps.unit("certificates").files[0].path.startswith(f"{LIVE}/mail.family.example/")
    # First deployment: the certificates arrive with the configuration that names them, and
    # Postfix's, Dovecot's and nginx's own checks read them from the stage.
    for bundle in (home, vps):
        stage = tmp_path / bundle.host
        bundle.write_to(stage)
        results = run_checks(bundle, stage)
        assert {"postfix", "dovecot", "wkd-nginx", "certificates"} & {r.unit for r in results}
        for result in results:
            assert result.ok, (result.unit, result.output)


def stage(tmp_path, files) -> None:
    for file in files:
        target = tmp_path / file.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file.content)


def test_the_staged_check_refuses_a_wrong_key_and_a_foreign_chain(issued, tmp_path):
    issuance = issued[0]
    folder = f"{LIVE}/{issuance.certificate.name}"
    stage(tmp_path, deploy._files(folder, issuance))
    paths = (f"{folder}/cert.pem", f"{folder}/chain.pem", f"{folder}/privkey.pem")
    assert run_check("certificates", deploy.check(*paths), tmp_path).ok
    key = tmp_path / folder.lstrip("/") / "privkey.pem"
    key.write_text(issuer.new_private_key())
    result = run_check("certificates", deploy.check(*paths), tmp_path)
    assert not result.ok and "privkey.pem is not the key of" in result.output
    foreign = LabCA("Not the issuer").issue(issuance.certificate.name)
    (tmp_path / folder.lstrip("/") / "cert.pem").write_bytes(
        foreign.fullchain.split(b"\n-----BEGIN")[0] + b"\n"
    )
    key.write_bytes(foreign.privkey)
    result = run_check("certificates", deploy.check(*paths), tmp_path)
    assert not result.ok and f"does not verify against {folder}/chain.pem" in result.output


def test_mailus_front_gets_its_certificate_in_its_certs_volume(mailu_issued, world, tmp_path):
    """TLS_FLAVOR=cert: the full chain as cert.pem and the key (secret) as key.pem, where the
    front reads them; the staged check passes on them, refuses another key and another CA's
    certificate with its own chain; activation restarts the front."""
    (unit,) = deploy.units(load_context(Host.objects.get(pk=world["home"].pk)))
    files = {file.path: file for file in unit.files}
    assert set(files) == {deploy.MAILU_CERT, deploy.MAILU_CHAIN, deploy.MAILU_KEY}
    leaf, chain = deploy.split_chain(mailu_issued.fullchain)
    assert files[deploy.MAILU_CERT].content == leaf + chain and chain
    assert (files[deploy.MAILU_KEY].mode, files[deploy.MAILU_KEY].secret) == (0o600, True)
    assert not files[deploy.MAILU_CERT].secret
    assert unit.activate == (mailu.front_restart(),)
    stage(tmp_path, unit.files)
    assert run_check("certificates", "\n".join(unit.checks), tmp_path).ok
    key = tmp_path / deploy.MAILU_KEY.lstrip("/")
    key.write_text(issuer.new_private_key())
    result = run_check("certificates", "\n".join(unit.checks), tmp_path)
    assert not result.ok
    assert "/mailu/certs/key.pem is not the key of /mailu/certs/cert.pem" in result.output
    foreign = LabCA("Not the issuer").issue(*mailu_issued.names)
    (tmp_path / deploy.MAILU_CERT.lstrip("/")).write_bytes(foreign.fullchain)
    key.write_bytes(foreign.privkey)
    result = run_check("certificates", "\n".join(unit.checks), tmp_path)
    assert not result.ok and "does not verify against /mailu/certs/chain.pem" in result.output


@pytest.fixture
def lab():
    host = LabHost.create(
        private_dirs=("/etc/letsencrypt", mailu.STORAGE, "/var/lib/mailgate", "/usr/local/sbin")
    )
    for name, script in (("systemctl", FAKE_SYSTEMCTL), ("docker", FAKE_DOCKER)):
        program = host.root / "private/usr/local/sbin" / name
        program.write_text(script)
        program.chmod(0o755)
    yield host
    host.close()


def deploy_certificates(host: Host) -> Deployment:
    """A deployment of the host's certificates unit alone, by the real engine over SSH."""
    deployment = Deployment.objects.create(host=host, trigger=DeploymentTrigger.CLI)
    units = tuple(deploy.units(load_context(host)))
    engine.run(deployment, bundle=Bundle(host=host.name, units=units))
    deployment.refresh_from_db()
    return deployment


def test_a_wrong_key_never_activates(issued, lab):
    good = next(i for i in issued if i.certificate.purpose == "mail")
    path = f"{LIVE}/{good.certificate.name}"
    assert_a_wrong_key_never_activates(
        lab, good, (f"{path}/fullchain.pem", good.fullchain.encode()), f"{path}/privkey.pem"
    )
    assert b"reload-or-restart postfix" in lab.read("/var/lib/mailgate/systemctl.log")


def test_a_wrong_key_never_activates_on_mailu(mailu_issued, lab):
    leaf, chain = deploy.split_chain(mailu_issued.fullchain)
    assert_a_wrong_key_never_activates(
        lab, mailu_issued, (deploy.MAILU_CERT, leaf + chain), deploy.MAILU_KEY
    )
    restarts = lab.read("/var/lib/mailgate/docker.log").decode().count("restart front")
    assert restarts == 1  # by the first deployment only: the second activated nothing


def assert_a_wrong_key_never_activates(lab, good: Issuance, chain: tuple[str, bytes], key: str):
    """The good certificate is deployed over SSH by the real engine; then one with another
    key fails the staged check, nothing is activated, and the host keeps the good key."""
    host = Host.objects.create(
        name="probe",
        is_relay=True,
        ssh_address=lab.address,
        ssh_private_key=lab.client_key,
        ssh_host_key=lab.host_key,
    )
    Certificate.objects.filter(pk=good.certificate_id).update(host=host)
    first = deploy_certificates(host)
    assert first.status == DeploymentStatus.SUCCEEDED, first.log
    assert lab.read(chain[0]) == chain[1]
    assert lab.run(f"stat -c %a {key}").stdout.strip() == "600"

    wrong = Issuance.objects.create(
        certificate=good.certificate,
        outcome=Outcome.ISSUED,
        names=good.names,
        fullchain=good.fullchain,
        private_key=issuer.new_private_key(),  # not the certificate's key
        not_after=good.not_after,
    )
    second = deploy_certificates(host)
    assert second.status == DeploymentStatus.FAILED
    assert f"{key} is not the key of" in second.log and "nothing was activated" in second.log
    assert lab.read(key) == good.private_key.encode()
    assert wrong.private_key not in second.log
