"""Traefik itself judges what Mailgate renders for it (``hosts.traefik_check``): the official
binary, the version the compose file pins, runs every Traefik shape in a network namespace of its
own and finds each router and service as rendered; a broken file fails with Traefik's own
message; a replaced dynamic file is picked up without a restart (hot reload)."""

import dataclasses
import subprocess

import pytest
import yaml

from gateway.bundle import File, Unit
from gateway.selectors import DomainEntry
from hosts import traefik_check
from hosts.acme import AcmeServer
from hosts.render import traefik
from hosts.render import traefik_check as traefik_check_script
from hosts.render.context import RenderContext
from tests.helpers import self_signed
from tests.render_world import context, file_of, mailu_world, traefik_unit, with_directory

# Each test starts Traefik in a network namespace of its own (root), for a few seconds.
pytestmark = [pytest.mark.netns, pytest.mark.slow]


@pytest.fixture
def world():
    return mailu_world()


def several_domains(world) -> RenderContext:
    """Three mail domains on two mail host names, HTTP-01 only (no Cloudflare token)."""
    world["vps"].cloudflare_api_token = ""
    ctx = context(world, "vps")
    third = DomainEntry("friends.example", "mail.friends.example")
    return with_directory(ctx, domains=(*ctx.directory.domains, third))


STAGING = "https://acme.staging.example:14000/dir"


def staging_ca(world) -> RenderContext:
    """Every resolver aimed at a private ACME server whose HTTPS certificate is signed by a CA
    of its own (Pebble's, in the lab), which they trust: ``caServer`` and ``caCertificates``."""
    ca, _ = self_signed("Staging ACME server's CA", valid_until=30)
    acme = AcmeServer(directory=STAGING, ca_pem=ca.encode())
    return dataclasses.replace(context(world, "vps"), acme=acme)


TRAEFIK_SHAPES = {
    "mailu-dns01": lambda world: context(world, "vps"),
    "postfix-dovecot-http01": lambda world: context(_postfix_dovecot_without_token(world), "vps"),
    "mailu-several-domains-http01": several_domains,
    "mailu-staging-ca": staging_ca,
}


def _postfix_dovecot_without_token(world):
    world["home"].mail_backend = "postfix-dovecot"
    world["vps"].cloudflare_api_token = ""
    return world


@pytest.fixture(params=sorted(TRAEFIK_SHAPES))
def shape(request, world) -> RenderContext:
    return TRAEFIK_SHAPES[request.param](world)


def with_dynamic(unit, edit) -> Unit:
    """The unit with its dynamic file changed by ``edit`` (a function of its text)."""
    files = tuple(
        File(file.path, edit(file.content.decode()).encode())
        if file.path == traefik.DYNAMIC
        else file
        for file in unit.files
    )
    return dataclasses.replace(unit, files=files)


def test_traefik_loads_every_shape_as_rendered(shape):
    (unit,) = traefik.units(shape)
    report = traefik_check.check(unit)
    assert "Traefik 3.5.3 loaded every router and service as rendered" in report
    dynamic = yaml.safe_load(file_of(unit, traefik.DYNAMIC))
    # Every router and service was looked up, not just counted.
    expected = traefik_check_script.expectations(dynamic)
    assert len(expected) == sum(
        len(dynamic[kind][part]) for kind in ("http", "tcp") for part in ("routers", "services")
    )
    assert f'"tcp":{{"routers":{{"total":{len(dynamic["tcp"]["routers"])}' in report


def test_traefik_loads_the_staging_servers_ca_and_asks_that_server(world):
    """The check's Traefik loads the rendered CA file (its offline resolvers then fail to reach
    the staging directory, the one message the check expects), and refuses one it cannot
    load, with its own message."""
    (unit,) = traefik.units(staging_ca(world))
    static = yaml.safe_load(file_of(unit, traefik.STATIC))
    assert {r["acme"]["caServer"] for r in static["certificatesResolvers"].values()} == {STAGING}
    assert "loaded every router and service as rendered" in traefik_check.check(unit)
    broken = tuple(
        File(file.path, b"not a certificate\n") if file.path == traefik.TRUST else file
        for file in unit.files
    )
    with pytest.raises(traefik_check.TraefikRejected, match="creating cert pool"):
        traefik_check.check(dataclasses.replace(unit, files=broken))


def test_traefik_runs_the_version_the_compose_file_names():
    version = subprocess.run(
        [traefik_check.binary(), "version"], capture_output=True, text=True, check=True
    ).stdout
    assert f"Version:      {traefik.TRAEFIK_IMAGE.split(':v')[1]}\n" in version


@pytest.mark.parametrize(
    ("mistake", "edit", "message"),
    [
        (
            "a misspelled router option",
            lambda text: text.replace("priority: 1000", "priorty: 1000"),
            "field not found, node: priorty",
        ),
        (
            "a missing service",
            lambda text: text.replace("service: mailu-imaps\n", "service: mailu-imap\n"),
            r"the service \"mailu-imap@file\" does not exist",
        ),
        (
            "a wrong entry point",
            lambda text: text.replace("- mailu-pop3s\n", "- mailu-pop3\n"),
            r"entryPoint \"mailu-pop3\" doesn" "'t exist",
        ),
        (
            "a rule Traefik cannot parse (the schemas take any string)",
            lambda text: text.replace("rule: HostSNI(`*`)", "rule: HostSNI(`*`))"),
            "expected 'EOF', found ')'",
        ),
    ],
)
def test_traefik_rejects_a_broken_file_with_its_own_message(world, mistake, edit, message):
    unit = with_dynamic(traefik_unit(world), edit)
    with pytest.raises(traefik_check.TraefikRejected) as rejected:
        traefik_check.check(unit)
    assert message in str(rejected.value), mistake


def test_traefik_rejects_a_rule_that_differs_from_what_mailgate_meant(world):
    """A rule Traefik accepts but that is not Mailgate's: the live Traefik serves it, the
    judge compares it with the rendered one."""
    unit = traefik_unit(world)
    rejected = pytest.raises(traefik_check.TraefikRejected, match="mailu-websecure@file lacks")
    with traefik_check.running(with_dynamic(unit, _sni_typo)) as traefik_process, rejected:
        traefik_process.live(unit, wait=2)


def _sni_typo(text: str) -> str:
    return text.replace("HostSNI(`mail.example.com`)", "HostSNI(`mail.example.org`)")


def test_traefik_picks_a_new_dynamic_file_up_without_a_restart(world):
    """Hot reload: the file watcher takes a replaced file in; the live judge waits for the new
    routers, and the same Traefik process serves them."""
    before = traefik_unit(world)
    after_ctx = several_domains(world)
    (after,) = traefik.units(after_ctx)
    with traefik_check.running(before) as traefik_process:
        traefik_process.live(before)
        traefik_process.replace(after)
        report = traefik_process.live(after)
        assert traefik_process.process.poll() is None  # never restarted
    assert "serves every router and service as rendered" in report
    assert b"mail.friends.example" in file_of(after, traefik.DYNAMIC)
