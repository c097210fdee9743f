"""The Mailu home server in the lab: ``lab up --mail-backend mailu`` behind the main reference
gateway (Traefik, HAProxy for 25; docs/reference-setups.md, "Tried here") runs Mailu's containers
natively in the home server's namespaces with Mailu's own start scripts and templates
(``lab.mailu``), deployed by the engine: the directory is applied by Mailu's admin, every check of
``lab verify`` passes through Mailu's front, Postfix, Dovecot and rspamd, and the front presents the
certificate Mailgate got from the lab's Pebble (docs/certificates.md, "The lab: Pebble on the
internet host")."""

import subprocess

import pytest
import yaml

from hosts.choices import GatewayProxy, MailBackend
from hosts.models import Deployment
from lab import mailbox, verify, world
from tests.keys_world import keyring_fixture  # noqa: F401 (fixture)
from tests.lab_helpers import (
    assert_a_forced_renewal_is_served,
    assert_adopted,
    assert_nothing_left,
)
from tests.mailu_oracle import oracle_core, oracle_python
from tests.shared import unavailable

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.netns, pytest.mark.slow]
PREFIX = "t17"
PLAYED = {"redis", "front", "admin", "imap", "smtp", "antispam"}


@pytest.fixture
def folder(tmp_path, keyring):
    """Mailu's containers need its source beside the project and, in its virtualenv, what its
    Postfix and Dovecot start scripts import besides the oracle's (Podop, the MTA-STS resolver):
    skipped without them, failed under CI (as the oracle's own tests)."""
    oracle_core()
    python = oracle_python()
    found = subprocess.run([python, "-c", "import podop, postfix_mta_sts_resolver"], check=False)
    if found.returncode:
        unavailable(f"{python} lacks podop or postfix-mta-sts-resolver (Mailu's requirements-prod)")
    return tmp_path / "lab"


def home_run(lab, command: str) -> str:
    result = lab.hosts["home"].run(f"cd /opt/mailu && {command}", timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_mailu_behind_the_reference_gateway_passes_every_check(folder):
    try:
        lab = world.up(
            folder=folder,
            say=print,
            prefix=PREFIX,
            gateway=GatewayProxy.TRAEFIK_HAPROXY,
            mail_backend=MailBackend.MAILU,
        )
        home = Deployment.objects.get(host__name=world.NAMES["home"])
        assert home.status == "succeeded", home.log
        assert "docker compose exec -T admin python3 -c" in home.log  # scripts/mailu-import.py
        running = home_run(lab, "docker compose ps --status running --services")
        assert set(running.split()) == PLAYED
        # What Mailu's admin holds is the directory Mailgate rendered.
        exported = home_run(lab, "docker compose exec -T admin flask mailu config-export")
        held = yaml.safe_load(exported)
        assert {user["email"] for user in held["user"]} == {
            "alice@family.example",
            "carol@family.example",
            "bob@friends.example",
        }
        aliases = {alias["email"]: alias["destination"] for alias in held["alias"]}
        assert aliases["team@family.example"] == ["alice@family.example", "carol@family.example"]

        results = verify.run_all(lab)
        report = "\n".join(f"{r.ok} {r.name}\n{r.evidence}" for r in results)
        print(report)
        evidence = {r.name.split(":")[0]: r.evidence for r in results}
        assert [r.name for r in results if not r.ok] == [], report
        # Docker forwards Mailu's ports for the tunnel address routed through its LAN address
        # (4 ports connect), and Mailu's front believes no header from there; every other path
        # is closed, the gateway's own programs included (the proxy guard).
        attack = evidence["Direct attack"].splitlines()
        assert sum("connected: none" in line for line in attack) == 14, attack
        assert sum("relayed for none" in line for line in attack) == 18, attack
        assert "client=client.outside.example[203.0.113.1]" in evidence["Inbound"]
        assert "client ['203.0.113.1']" in evidence["Client address"]
        assert any("553 5.7.1" in r.evidence for r in results)  # the spoofed sender
        assert "from 203.0.113.10" in evidence["Outbound"]
        assert "opendkim-testmsg: exit 0" in evidence["DKIM"]
        assert "the same bytes" in evidence["WKD"]
        assert "Local mail" not in evidence  # no mail server on a Mailu host itself
        # Mailu's one certificate for all of HOSTNAMES comes from the lab's Pebble through Mailgate
        # (docs/certificates.md, the lab): every name on 443, 465, 587 and 993, and a forced renewal
        # is served once the deployment restarted the front; the names Traefik terminates come from
        # the same Pebble through Traefik's own ACME (docs/traefik.md, "In the lab: Traefik asks
        # Pebble").
        served = evidence["Certificates"].splitlines()
        assert all("issuer Pebble Intermediate CA" in line for line in served), served
        home = [line for line in served if "(lab-home)" in line]
        traefiks = [line for line in served if "(Traefik's own ACME on " in line]
        assert (len(home), len(traefiks), len(served)) == (8, 8, 16), served
        assert_a_forced_renewal_is_served(lab, verify.MAILU_TLS_PORTS)
        # A mailbox's own settings through Mailu's import, seen from outside
        # (docs/mailbox-features.md).
        proofs = mailbox.prove_all(lab)
        report = "\n".join(f"{r.ok} {r.name}\n{r.evidence}" for r in proofs)
        print(report)
        assert [r.name for r in proofs if not r.ok] == [], report
        assert_adopted(lab)  # last: it deletes rows
    finally:
        world.down(folder=folder, say=print)
    assert_nothing_left(folder, PREFIX)
    mailu = "-m lab.mailu|src/core/(postfix|dovecot|rspamd)/start.py|mailu:create_app"
    left = subprocess.run(["pgrep", "-f", mailu], capture_output=True)
    assert left.stdout == b""  # every container's processes ended with the lab
