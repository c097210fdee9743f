"""The gateway lab end to end: ``lab up`` builds the reference setup (docs/reference-setups.md,
"Tried here") in network namespaces and deploys it through the engine, every check of ``lab verify``
passes on real programs, and ``lab down`` leaves nothing behind, also after a failure halfway
through ``up``."""

import pytest
from django.core.management import CommandError, call_command

from hosts.models import Deployment, Host
from hosts.render.context import ACME_CHALLENGE_PATH, ACME_CHALLENGE_ROOT
from lab import acme, mailbox, verify, world
from lab.hosts import LabError, LabHost, _free_block
from tests.keys_world import keyring_fixture  # noqa: F401 (fixture)
from tests.lab_helpers import (
    assert_a_forced_renewal_is_served,
    assert_adopted,
    assert_nothing_left,
    assert_status_is_green,
    namespaces,
)
from zones.models import PushTarget

pytestmark = pytest.mark.django_db(transaction=True)
NGINX_LOG = "/var/log/nginx/access.log"  # Debian's nginx.conf, which the lab's gateway keeps


@pytest.fixture
def folder(tmp_path, keyring):
    return tmp_path / "lab"


def test_it_deploys_the_reference_setup_and_proves_that_mail_flows(folder, capsys):
    prefix = "t6"
    try:
        lab = world.up(folder=folder, say=print, prefix=prefix)
        assert {d.status for d in Deployment.objects.all()} == {"succeeded"}
        results = verify.run_all(lab)
        report = "\n".join(f"{r.ok} {r.name}\n{r.evidence}" for r in results)
        print(report)
        assert [r.name for r in results if not r.ok] == [], report
        # The evidence is what a person would look for, not just a yes.
        evidence = {r.name.split(":")[0]: r.evidence for r in results}
        assert "connect from unknown[203.0.113.1]" in evidence["Inbound"]
        assert "from 203.0.113.10" in evidence["Outbound"]
        assert any("553 5.7.1" in r.evidence for r in results)  # the spoofed sender
        # The mail server attacked directly (docs/proxy-trust.md, "How it is proven"): every port,
        # every forged claim, from the internet on three paths and from the gateway as an
        # unprivileged program.
        attack = evidence["Direct attack"].splitlines()
        assert sum("connected: none" in line for line in attack) == 18, attack
        assert sum("relayed for none" in line for line in attack) == 18, attack
        assert (
            "vps (nobody) -> the proxy at 127.0.0.1:25: connected: none; relayed for none" in attack
        )
        assert "refuses ['TLS 1.1', 'TLS 1.2 CBC', 'TLS 1.2 anonymous']" in evidence["TLS"]
        second = evidence["Second mail host name"]
        assert "presents CN=mail.friends.example: message found" in second
        # A mailbox's own settings, each deployed and seen from outside (docs/mailbox-features.md).
        proofs = mailbox.prove_all(lab)
        report = "\n".join(f"{r.ok} {r.name}\n{r.evidence}" for r in proofs)
        print(report)
        assert [r.name for r in proofs if not r.ok] == [], report
        call_command("lab", "status", folder=folder)
        assert "ssh" in capsys.readouterr().out
        assert_status_is_green(folder)
        # Every certificate from the lab's ACME server, and a forced renewal is served
        # (docs/certificates.md, "The lab: Pebble on the internet host").
        assert "issuer Pebble Intermediate CA" in evidence["Certificates"]
        assert_a_forced_renewal_is_served(lab, verify.MAIL_TLS_PORTS)
        assert_http01_through_the_gateway(lab)
        assert_adopted(lab)  # last: it deletes rows
    finally:
        world.down(folder=folder, say=print)
    assert_nothing_left(folder, prefix)


def assert_http01_through_the_gateway(lab) -> None:
    """A zone without a DNS push: its certificate is validated over HTTP-01 through the
    gateway's HAProxy and nginx, and the challenge file is gone afterwards."""
    PushTarget.objects.filter(domain__name=world.FRIENDS).delete()
    home = Host.objects.get(name=world.NAMES["home"])
    certificate = home.certificates.get(name=world.FRIENDS_MAIL_HOST)
    renewed = acme.renew(lab.made["acme"], certificate)
    assert renewed.outcome == "issued", renewed.message
    vps = lab.hosts["vps"]
    fetched = vps.run(f"grep -c 'GET {ACME_CHALLENGE_PATH}[^ ]* HTTP/1.1\" 200' {NGINX_LOG}")
    assert int(fetched.stdout or 0) >= 1, fetched
    assert vps.run(f"ls -A {ACME_CHALLENGE_ROOT}").stdout == ""


def test_it_removes_everything_when_up_fails_halfway(folder, monkeypatch):
    prefix = "t6f"

    def broken_deploy(lab, say):
        assert len(namespaces(prefix)) == 4  # everything was built when it broke
        raise LabError("the deployment failed")

    monkeypatch.setattr(world, "_deploy", broken_deploy)
    with pytest.raises(LabError, match="the deployment failed"):
        world.up(folder=folder, say=print, prefix=prefix)
    assert_nothing_left(folder, prefix)


def test_it_says_why_it_cannot_register_and_removes_only_what_it_made(folder):
    Host.objects.create(name="lab-vps", is_relay=True, ssh_address="192.0.2.1")
    with pytest.raises(CommandError, match="cannot register its hosts"):
        call_command("lab", "up", folder=folder)
    assert namespaces("lab") == [] and not folder.exists()
    assert list(Host.objects.values_list("name", flat=True)) == ["lab-vps"]  # the panel's own


def test_it_refuses_a_second_lab_and_explains_an_empty_one(folder, capsys):
    call_command("lab", "status", folder=folder)
    assert "No lab is up" in capsys.readouterr().out
    folder.mkdir()
    (folder / "state.json").write_text('{"hosts": {}, "made": {}}')
    with pytest.raises(LabError, match="A lab is up already"):
        world.up(folder=folder, say=print)


def test_two_lab_hosts_never_share_a_link_network():
    first = LabHost.create("t6n")
    try:
        taken = int(first.address.split(".")[2])
        assert _free_block(taken) != taken
    finally:
        first.close()
