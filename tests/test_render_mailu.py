"""Mailu on the home server: mailu.env, the Compose stack and the config-import file match the
Mailu-behind-Traefik guide (docs/reference-setups.md) and docs/facts.md §3, pass the Compose schema
(and docker compose where it runs), and refuse what Mailu or docker compose would misread."""

import dataclasses
import os
import shutil
import stat
import subprocess

import pytest
import yaml
from django.core.exceptions import ValidationError

from gateway.bundle import RenderError
from hosts.checks import run_check
from hosts.render import mailu
from tests.render_world import (
    HASH,
    assert_golden,
    context,
    mailu_bundle,
    mailu_world,
    with_directory,
    with_relay,
)

ENV = "/opt/mailu/mailu.env"
COMPOSE = "/opt/mailu/docker-compose.yml"
IMPORT = "/opt/mailu/mailgate/config-import.yaml"


@pytest.fixture
def world():
    return mailu_world()


def rendered(world, path: str) -> bytes:
    return mailu_bundle(context(world, "home")).file(path).content


def env_settings(world) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in rendered(world, ENV).decode().splitlines()]
    return {pair[0]: pair[1] for pair in pairs if not pair[0].startswith("#")}


def parsed(world, path: str) -> dict:
    return yaml.safe_load(rendered(world, path))


def without_docker(tmp_path) -> dict:
    """An environment whose PATH has no docker (the snippets use only shell builtins then)."""
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    return {**os.environ, "PATH": str(empty)}


def fake_docker(tmp_path, script: str) -> dict:
    """An environment whose ``docker`` is a stub script: it records its arguments in a log."""
    folder = tmp_path / "fake-bin"
    folder.mkdir()
    docker = folder / "docker"
    docker.write_text(f'#!/bin/bash\necho "$@" >> {tmp_path}/docker.log\n{script}\n')
    docker.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}:/usr/bin:/bin"}


def run_snippet(snippet: str, stage, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["/bin/bash", "-c", snippet],
        env={**env, "STAGE": str(stage)},
        capture_output=True,
        text=True,
        check=False,
    )


def working_docker_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return result.returncode == 0


@pytest.mark.parametrize(
    ("path", "golden"),
    [(ENV, "mailu.env"), (COMPOSE, "docker-compose.yml"), (IMPORT, "config-import.yaml")],
)
def test_it_renders_mailu_as_reviewed(world, path, golden):
    assert_golden(rendered(world, path), f"mailu/{golden}")


def test_it_renders_nothing_for_other_hosts(world):
    world["home"].mail_backend = "postfix-dovecot"
    assert mailu.units(context(world, "home")) == []
    assert mailu.units(context(world, "vps")) == []
    assert mailu.units(context(world, "relay")) == []


def test_it_trusts_the_gateway_and_expects_proxy_headers_as_in_the_guide(world):
    env = env_settings(world)
    assert env["REAL_IP_FROM"] == "1.2.3.4,10.0.1.1"
    assert env["PROXY_PROTOCOL"] == "25,443,465,587,993,995,4190"
    assert "REAL_IP_HEADER" not in env
    assert "587" in env["PORTS"].split(",")
    assert env["SUBNET"] == "192.168.203.0/24"
    assert env["DOMAIN"] == "example.com"
    assert env["HOSTNAMES"] == "mail.example.com"
    assert env["TLS_FLAVOR"] == "cert"  # Mailgate's certificate in the certs volume
    assert (env["TLS_CERT_FILENAME"], env["TLS_KEYPAIR_FILENAME"]) == ("cert.pem", "key.pem")
    assert env["SECRET_KEY"] == "0123456789abcdef0123456789abcdef"
    assert env["API"] == "false"


def test_it_adds_the_gateways_ipv6_address_and_every_mail_host_name(world):
    world["vps"].public_ipv6 = "2001:db8::1"
    world["home"].fqdn = "home.example.net"
    env = env_settings(world)
    assert env["REAL_IP_FROM"] == "1.2.3.4,2001:db8::1,10.0.1.1"
    assert env["HOSTNAMES"] == "home.example.net,mail.example.com"


def test_the_front_presents_the_hosts_own_certificate_files_from_its_certs_volume(world):
    world["home"].tls_certificate_path = "/mailu/certs/own/fullchain.pem"
    world["home"].tls_key_path = "/mailu/certs/own/privkey.pem"
    env = env_settings(world)
    assert env["TLS_FLAVOR"] == "cert"
    assert env["TLS_CERT_FILENAME"] == "own/fullchain.pem"
    assert env["TLS_KEYPAIR_FILENAME"] == "own/privkey.pem"


@pytest.mark.parametrize(
    ("certificate", "key"),
    [
        ("/etc/letsencrypt/live/mail.example.com/fullchain.pem", "/mailu/certs/key.pem"),
        ("/mailu/certs/cert.pem", ""),  # the front has no default beside a file of the host's
        ("/mailu/certs/../data/cert.pem", "/mailu/certs/key.pem"),
        ("/mailu/certsx/cert.pem", "/mailu/certs/key.pem"),
    ],
)
def test_it_refuses_own_certificate_files_the_front_cannot_see(world, certificate, key):
    home = world["home"]
    home.tls_certificate_path, home.tls_key_path = certificate, key
    with pytest.raises(ValidationError) as refused:  # Host.clean: the page's and the API's check
        home.clean()
    [message] = refused.value.message_dict["tls_certificate_path"]
    assert "reads its certificate and key from /mailu/certs only" in message
    # A row saved before the rule (or written around the model) never renders either.
    with pytest.raises(RenderError, match="reads its certificate and key from /mailu/certs only"):
        env_settings(world)


def test_it_uses_the_routed_subnet_for_mailus_network(world):
    world["peer"].routed_subnet = "172.30.5.0/24"
    assert env_settings(world)["SUBNET"] == "172.30.5.0/24"
    network = parsed(world, COMPOSE)["networks"]["default"]
    assert network["ipam"]["config"] == [{"subnet": "172.30.5.0/24"}]
    assert parsed(world, COMPOSE)["services"]["resolver"]["networks"] == {
        "default": {"ipv4_address": "172.30.5.254"}
    }


def test_it_keeps_secrets_private(world):
    bundle = mailu_bundle(context(world, "home"))
    assert (bundle.file(ENV).mode, bundle.file(ENV).secret) == (0o600, True)
    assert (bundle.file(IMPORT).mode, bundle.file(IMPORT).secret) == (0o600, True)
    assert bundle.file(COMPOSE).secret is False


def test_it_renders_the_setup_utilitys_stack(world):
    compose = parsed(world, COMPOSE)
    services = compose["services"]
    assert list(services) == [
        "redis", "front", "resolver", "admin", "imap", "smtp", "antispam", "webmail",
    ]  # fmt: skip
    assert services["front"]["image"] == "ghcr.io/mailu/nginx:2024.06"
    assert services["smtp"]["image"] == "ghcr.io/mailu/postfix:2024.06"
    assert "10.0.1.2:587:587" in services["front"]["ports"]
    assert all(
        volume.startswith("/mailu/") for s in services.values() for volume in s.get("volumes", [])
    )
    assert {s.get("env_file") for name, s in services.items() if name != "redis"} == {"mailu.env"}


def test_it_passes_the_compose_schema_and_a_broken_stack_fails_it(world):
    ctx = context(world, "home")
    compose = mailu.compose(ctx, mailu.mailu_subnet(ctx))
    assert mailu.validated(compose) is compose
    compose["services"]["front"]["ports"] = "25:25"  # must be a list
    with pytest.raises(RenderError, match="services/front/ports"):
        mailu.validated(compose)


def test_it_writes_the_directory_in_config_import_shape(world):
    document = parsed(world, IMPORT)
    assert list(document) == ["domain", "user", "alias"]
    assert document["domain"] == [{"name": "example.com"}, {"name": "family.example"}]
    john = document["user"][0]
    assert john == {
        "email": "john@example.com",
        "password": HASH.removeprefix("{BLF-CRYPT}"),
        "displayed_name": "John Doe",
        "quota_bytes": 2048 * 1024 * 1024,
        # Mailgate's defaults, written out: a full import would reset an absent field.
        "enable_imap": True,
        "enable_pop": True,
        "forward_enabled": False,
        "forward_destination": [],
        "forward_keep": True,
        "reply_enabled": False,
        "reply_subject": "",
        "reply_body": "",
        "reply_startdate": "1900-01-01",
        "reply_enddate": "2999-12-31",
        "spam_enabled": True,
        "spam_threshold": 80,
        "tokens": [],
    }
    assert john["password"].startswith("$2b$")
    assert document["user"][1]["quota_bytes"] == 0  # unlimited, not Mailu's 1 GB default
    catch_all = {"email": "%@family.example", "destination": ["alice@family.example"]}
    assert {**catch_all, "wildcard": True} in document["alias"]
    assert document["alias"][0] == {
        "email": "postmaster@example.com",
        "destination": ["john@example.com"],
    }


def test_it_refuses_a_mailbox_without_a_password(world):
    ctx = context(world, "home")
    mailbox = ctx.directory.mailboxes[0]
    empty = dataclasses.replace(mailbox, password_hash="")
    with pytest.raises(RenderError, match=r"john@example\.com has no password"):
        mailu.units(with_directory(ctx, mailboxes=(empty,)))


def test_it_refuses_a_display_name_longer_than_mailu_keeps(world):
    """Mailu's import refuses a display name over 160 characters, and with it the whole
    directory (tests/test_render_mailu_oracle.py); Mailgate allows 200."""
    ctx = context(world, "home")
    long_name = dataclasses.replace(ctx.directory.mailboxes[0], display_name="J" * 161)
    with pytest.raises(
        RenderError, match=r"at most 160 characters.*of john@example\.com \(161 characters\)"
    ):
        mailu.units(with_directory(ctx, mailboxes=(long_name,)))


def test_it_refuses_a_domain_name_longer_than_mailu_keeps(world):
    ctx = context(world, "home")
    name = f"{'d' * 63}.{'e' * 9}.example"  # 81 characters: Mailu keeps 80, Mailgate 253
    domain = dataclasses.replace(ctx.directory.domains[1], name=name)
    with pytest.raises(RenderError, match=rf"at most 80 characters.*{name} \(81 characters\)"):
        mailu.units(with_directory(ctx, domains=(ctx.directory.domains[0], domain)))


def test_it_refuses_an_empty_directory(world):
    ctx = with_directory(context(world, "home"), domains=(), mailboxes=(), aliases=())
    with pytest.raises(RenderError, match="add and enable a domain"):
        mailu.units(ctx)


def test_it_adds_relay_settings_only_with_a_relay(world):
    assert not {"RELAYHOST", "RELAYUSER", "RELAYPASSWORD"} & set(env_settings(world))
    env = env_settings(with_relay(world))
    assert env["RELAYHOST"] == "[192.168.1.11]:587"
    assert env["RELAYUSER"] == "joe"
    assert env["RELAYPASSWORD"] == "s3cret-Pass_word"
    assert env["OUTBOUND_TLS_LEVEL"] == "encrypt"


@pytest.mark.parametrize(
    ("level", "mailu_level"),
    [("may", "encrypt"), ("encrypt", "encrypt"), ("verify", "secure"), ("secure", "secure")],
)
def test_it_maps_the_tls_level_to_one_mailu_knows(world, level, mailu_level):
    assert env_settings(with_relay(world, tls_level=level))["OUTBOUND_TLS_LEVEL"] == mailu_level


def test_a_relay_host_without_a_password_is_reached_as_postfix_offers_it(world):
    """A Mailgate relay host on the LAN relays for Mailu's subnet without a login and offers no
    STARTTLS: Mailu must not insist on TLS there (it deferred every message before)."""
    env = env_settings(with_relay(world, port=25, username="", password="", tls_level="may"))
    assert env["RELAYHOST"] == "[192.168.1.11]:25"
    assert env["OUTBOUND_TLS_LEVEL"] == "may"
    assert "RELAYUSER" not in env and "RELAYPASSWORD" not in env


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.1.1", "localhost", "::1", "[::1]"])
def test_it_refuses_a_relay_on_the_containers_loopback(world, host):
    with pytest.raises(RenderError) as raised:
        mailu.units(context(with_relay(world, host=host, port=1025), "home"))
    message = str(raised.value)
    assert "container" in message and "192.168.203.1" in message and "relay host" in message


@pytest.mark.parametrize(
    "change",
    [
        lambda world: with_relay(world, password="pass\nRELAYHOST=evil"),
        lambda world: setattr(world["home"], "mailu_secret_key", "key\nADMIN=true"),
        lambda world: setattr(world["vps"], "public_ipv4", "1.2.3.4\n"),
    ],
)
def test_it_refuses_a_newline_in_an_env_value(world, change):
    change(world)
    with pytest.raises(RenderError, match="control character"):
        mailu.units(context(world, "home"))


@pytest.mark.parametrize("field", ["display_name", "address", "password_hash"])
def test_it_refuses_a_newline_in_the_directory(world, field):
    ctx = context(world, "home")
    mailbox = ctx.directory.mailboxes[0]
    broken = dataclasses.replace(mailbox, **{field: "x\ny"})
    with pytest.raises(RenderError, match="control character"):
        mailu.units(with_directory(ctx, mailboxes=(broken,)))


@pytest.mark.parametrize("password", ["two words", "pa$$word", "has#hash", 'q"uote', "back\\slash"])
def test_it_refuses_an_env_value_docker_compose_would_misread(world, password):
    with pytest.raises(RenderError, match=r"RELAYPASSWORD.*env-file parser"):
        mailu.units(context(with_relay(world, password=password), "home"))


def test_it_renders_identical_bytes_twice(world):
    first = mailu_bundle(context(world, "home"))
    second = mailu_bundle(context(world, "home"))
    assert [(f.path, f.content) for f in first.files] == [(f.path, f.content) for f in second.files]


def test_it_runs_the_checks_as_a_no_op_without_docker(world, tmp_path):
    bundle = mailu_bundle(context(world, "home"))
    bundle.write_to(tmp_path)
    for snippet in bundle.unit("mailu").checks:
        result = run_snippet(snippet, tmp_path, without_docker(tmp_path))
        assert result.returncode == 0, result.stderr


def test_it_checks_the_staged_stack_with_docker_compose(world, tmp_path):
    bundle = mailu_bundle(context(world, "home"))
    bundle.write_to(tmp_path)
    result = run_snippet(bundle.unit("mailu").checks[0], tmp_path, fake_docker(tmp_path, "true"))
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "docker.log").read_text().splitlines()
    stage = f"{tmp_path}/opt/mailu"
    assert (
        calls[-1] == f"compose --project-directory {stage} -f {stage}/docker-compose.yml config -q"
    )


def test_it_fails_the_check_when_docker_compose_rejects_the_stack(world, tmp_path):
    bundle = mailu_bundle(context(world, "home"))
    bundle.write_to(tmp_path)
    rejects_config = '[ "$1 $2" = "compose version" ] || { echo "invalid" >&2; exit 1; }'
    env = fake_docker(tmp_path, rejects_config)
    result = run_snippet(bundle.unit("mailu").checks[0], tmp_path, env)
    assert result.returncode != 0


def test_it_fails_the_check_when_docker_has_no_compose_plugin(world, tmp_path):
    bundle = mailu_bundle(context(world, "home"))
    bundle.write_to(tmp_path)
    env = fake_docker(tmp_path, "exit 1")
    result = run_snippet(bundle.unit("mailu").checks[0], tmp_path, env)
    assert result.returncode != 0
    assert "compose plugin" in result.stderr


@pytest.mark.skipif(
    not working_docker_compose(),
    reason="docker compose is not usable on this machine (no docker, or docker without its "
    "compose plugin): the real 'docker compose config -q' cannot run here",
)
def test_it_passes_the_real_docker_compose_config(world, tmp_path):
    bundle = mailu_bundle(context(world, "home"))
    bundle.write_to(tmp_path)
    result = run_check("mailu", bundle.unit("mailu").checks[0], tmp_path)
    assert result.ok, result.output


def test_it_dry_runs_the_import_in_the_running_admin_container(world, tmp_path):
    bundle = mailu_bundle(context(world, "home"))
    bundle.write_to(tmp_path)
    dry_run = bundle.unit("mailu").checks[1]
    assert 'python3 -c "$(cat "$STAGE"/opt/mailu/mailgate/import.py)" -n' in dry_run
    assert '< "$STAGE"/opt/mailu/mailgate/config-import.yaml' in dry_run
    # Without a running admin (the stub lists no service) docker is never asked to import.
    result = run_snippet(dry_run, tmp_path, fake_docker(tmp_path, "true"))
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "docker.log").read_text().splitlines()
    assert calls == ["compose -f /opt/mailu/docker-compose.yml ps --status running --services"]


def test_it_starts_mailu_then_replaces_its_directory(world):
    activate = mailu_bundle(context(world, "home")).unit("mailu").activate
    assert activate[0] == "cd /opt/mailu && docker compose up -d"
    assert activate[1].endswith(
        'docker compose exec -T admin python3 -c "$(cat /opt/mailu/mailgate/import.py)" < '
        "/opt/mailu/mailgate/config-import.yaml"
    )
    assert " -u" not in activate[1]  # replace, not merge: see the module docstring


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_it_passes_shellcheck_on_every_snippet(world, tmp_path):
    unit = mailu_bundle(context(world, "home")).unit("mailu")
    for index, snippet in enumerate((*unit.checks, *unit.activate)):
        script = tmp_path / f"snippet{index}.sh"
        script.write_text(f"#!/bin/bash\n{snippet}\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout
