"""Certificates reach their hosts through the normal engine: in the host's bundle, where
Postfix, Dovecot and nginx read them, checked on the staged copy (the chain verifies, the key
is the certificate's) before anything is activated."""

import pytest

from certs import deploy, issuer, services
from certs.choices import Outcome
from certs.models import Certificate, Issuance
from gateway.bundle import Bundle
from hosts import engine
from hosts.checks import run_check, run_checks
from hosts.choices import DeploymentStatus
from hosts.models import Deployment, Host
from hosts.render import render_host
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


@pytest.fixture
def issued(world, pebble, other, zone):
    push_to(other, zone)
    result = services.certificates_renew()
    assert {i.outcome for i in result} == {Outcome.ISSUED}, [i.message for i in result]
    return result


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


def stage(tmp_path, issuance: Issuance) -> str:
    folder = f"{LIVE}/{issuance.certificate.name}"
    for file in deploy._files(folder, issuance):
        target = tmp_path / file.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file.content)
    return folder


def test_the_staged_check_refuses_a_wrong_key_and_a_foreign_chain(issued, tmp_path):
    issuance = issued[0]
    folder = stage(tmp_path, issuance)
    assert run_check("certificates", deploy.check(folder), tmp_path).ok
    key = tmp_path / folder.lstrip("/") / "privkey.pem"
    key.write_text(issuer.new_private_key())
    result = run_check("certificates", deploy.check(folder), tmp_path)
    assert not result.ok and "privkey.pem is not the key of" in result.output
    foreign = LabCA("Not the issuer").issue(issuance.certificate.name)
    (tmp_path / folder.lstrip("/") / "cert.pem").write_bytes(
        foreign.fullchain.split(b"\n-----BEGIN")[0] + b"\n"
    )
    key.write_bytes(foreign.privkey)
    result = run_check("certificates", deploy.check(folder), tmp_path)
    assert not result.ok and "does not verify against its chain.pem" in result.output


@pytest.fixture
def lab():
    host = LabHost.create(private_dirs=("/etc/letsencrypt", "/var/lib/mailgate", "/usr/local/sbin"))
    systemctl = host.root / "private/usr/local/sbin/systemctl"
    systemctl.write_text(FAKE_SYSTEMCTL)
    systemctl.chmod(0o755)
    yield host
    host.close()


def deploy_certificates(host: Host) -> Deployment:
    """A deployment of the host's certificates unit alone, by the real engine over SSH."""
    deployment = Deployment.objects.create(host=host, trigger="test")
    units = tuple(deploy.units(load_context(host)))
    engine.run(deployment, bundle=Bundle(host=host.name, units=units))
    deployment.refresh_from_db()
    return deployment


def test_a_wrong_key_never_activates(issued, lab):
    host = Host.objects.create(
        name="probe",
        is_relay=True,
        ssh_address=lab.address,
        ssh_private_key=lab.client_key,
        ssh_host_key=lab.host_key,
    )
    good = next(i for i in issued if i.certificate.purpose == "mail")
    Certificate.objects.filter(pk=good.certificate_id).update(host=host)
    path = f"{LIVE}/{good.certificate.name}"
    first = deploy_certificates(host)
    assert first.status == DeploymentStatus.SUCCEEDED, first.log
    assert lab.read(f"{path}/fullchain.pem") == good.fullchain.encode()
    assert lab.run(f"stat -c %a {path}/privkey.pem").stdout.strip() == "600"
    assert b"reload-or-restart postfix" in lab.read("/var/lib/mailgate/systemctl.log")

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
    assert "privkey.pem is not the key of" in second.log and "nothing was activated" in second.log
    assert lab.read(f"{path}/privkey.pem") == good.private_key.encode()
    assert wrong.private_key not in second.log
