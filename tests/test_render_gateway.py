"""The gateway's proxies: HAProxy (alone, or for port 25 beside Traefik) and Traefik with its
compose file. The files match the Mailu-behind-Traefik guide (docs/reference-setups.md, "The guides
these setups follow"), pass `haproxy -c` and the JSON schemas, and those validators (and Mailgate's
own cross-reference checks) really catch mistakes."""

import copy
import dataclasses
import subprocess

import pytest
import yaml

from gateway.bundle import Bundle, RenderError
from gateway.selectors import DomainEntry
from hosts.acme import AcmeServer, acme_server
from hosts.checks import run_check
from hosts.render import haproxy, jsonschemas, nginx, traefik
from hosts.render.context import PROXY_PROTOCOL_PORTS
from tests.helpers import self_signed
from tests.render_world import (
    assert_golden,
    context,
    file_of,
    hosts,
    mailu_world,
    traefik_unit,
    with_directory,
)

TRAEFIK_FILES = {
    traefik.STATIC: "traefik.yml",
    traefik.DYNAMIC: "dynamic-mailu.yml",
    traefik.COMPOSE: "docker-compose.yml",
    traefik.HAPROXY_CONFIG: "haproxy25.cfg",
}


@pytest.fixture
def world():
    return mailu_world()


@pytest.fixture
def haproxy_world(world):
    """The all-HAProxy gateway in front of Mailu."""
    world["vps"].gateway_proxy = "haproxy"
    return world


def haproxy_unit(world):
    (unit,) = haproxy.units(context(world, "vps"))
    return unit


def documents(world) -> tuple[dict, dict, dict]:
    unit = traefik_unit(world)
    return tuple(
        yaml.safe_load(file_of(unit, path))
        for path in (traefik.STATIC, traefik.DYNAMIC, traefik.COMPOSE)
    )


def haproxy_check(tmp_path, content: bytes) -> subprocess.CompletedProcess:
    path = tmp_path / "haproxy.cfg"
    path.write_bytes(content)
    return subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)


# --- golden files, reviewed against the guide ----------------------------------------------------


def test_it_renders_the_all_haproxy_gateway_as_reviewed(haproxy_world):
    assert_golden(file_of(haproxy_unit(haproxy_world), haproxy.CONFIG), "gateway/haproxy.cfg")


@pytest.mark.parametrize("path", sorted(TRAEFIK_FILES))
def test_it_renders_the_traefik_gateway_as_reviewed(world, path):
    assert_golden(file_of(traefik_unit(world), path), f"gateway/{TRAEFIK_FILES[path]}")


def test_it_renders_identical_bytes_twice():
    def render_all():
        traefik_world, all_haproxy = hosts(), hosts()
        all_haproxy["vps"].gateway_proxy = "haproxy"
        units = [*traefik.units(context(traefik_world, "vps"))]
        units += haproxy.units(context(all_haproxy, "vps"))
        return [(file.path, file.content) for unit in units for file in unit.files]

    assert render_all() == render_all()


# --- which hosts get what ------------------------------------------------------------------------


def test_it_renders_nothing_for_a_host_that_is_not_a_gateway(world):
    assert haproxy.units(context(world, "home")) == []
    assert traefik.units(context(world, "home")) == []


def test_it_renders_each_flavour_only_on_its_gateway(world, haproxy_world):
    traefik_world = hosts()
    assert haproxy.units(context(traefik_world, "vps")) == []
    assert traefik.units(context(haproxy_world, "vps")) == []


def test_it_renders_nothing_before_a_mail_server_joins_the_tunnel(world):
    world["home"].is_mailserver = False
    assert traefik.units(context(world, "vps")) == []
    world["vps"].gateway_proxy = "haproxy"
    assert haproxy.units(context(world, "vps")) == []


def test_it_refuses_a_mail_server_without_a_tunnel_address(world):
    world["home"].tunnel_address = None
    with pytest.raises(RenderError, match="tunnel address"):
        traefik.units(context(world, "vps"))


# --- HAProxy -------------------------------------------------------------------------------------


def test_it_forwards_every_proxy_protocol_port_with_a_proxy_header(haproxy_world):
    config = file_of(haproxy_unit(haproxy_world), haproxy.CONFIG).decode()
    for port in PROXY_PROTOCOL_PORTS:
        assert f"  bind :{port}\n" in config
        assert f"10.0.1.2:{port} send-proxy-v2 " in config
    assert "server home 10.0.1.2:80\n" in config  # port 80 without a PROXY header
    assert "server wkd_nginx 127.0.0.1:8443 send-proxy-v2" in config


def test_it_checks_each_server_once_a_minute_and_never_the_acme_port(haproxy_world, tmp_path):
    """A check is a connection the mail server logs as an error (no PROXY header): one per
    server and minute, the other backends track it; port 80 has none, so an ACME client that
    starts only for the renewal is reached at once, and neither has the gateway's nginx that
    answers Mailgate's own HTTP-01 challenges."""
    config = file_of(haproxy_unit(haproxy_world), haproxy.CONFIG).decode()
    servers = [line.strip() for line in config.splitlines() if line.strip().startswith("server")]
    checks = [line for line in servers if " check " in line]
    assert [line.split()[1] for line in checks] == ["home", "wkd_nginx"]
    assert all("inter 60s" in line for line in checks)
    assert "server home 10.0.1.2:25 send-proxy-v2 check port 25 inter 60s" in checks[0]
    tracking = [line for line in servers if " track " in line]
    assert len(tracking) == len(servers) - len(checks) - 2
    assert all(line.endswith("track mailserver_smtp/home") for line in tracking)
    assert "server home 10.0.1.2:80" in servers
    assert "server acme_nginx 127.0.0.1:8081" in servers
    bundle = Bundle(host="vps", units=(haproxy_unit(haproxy_world),))
    bundle.write_to(tmp_path)
    result = run_check("haproxy", bundle.unit("haproxy").checks[0], tmp_path)
    assert result.ok, result.output  # haproxy -c accepts the tracking


def test_it_reads_port_80_as_http_and_sends_acme_challenges_to_the_gateways_nginx(
    haproxy_world,
):
    """HTTP-01 (RFC 8555 §8.3) through the gateway: the challenge path goes to nginx, which
    answers Mailgate's tokens and passes the others on; the rest of port 80 to the mail server."""
    config = file_of(haproxy_unit(haproxy_world), haproxy.CONFIG).decode()
    frontend = config.split("frontend http_in\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert frontend == [
        "  mode http",
        "  option httplog",
        "  timeout http-request 10s",
        "  bind :80",
        "  # The request's path chooses the backend.",
        "  acl path_acme_nginx path_beg /.well-known/acme-challenge/",
        "  use_backend acme_nginx if path_acme_nginx",
        "  default_backend mailserver_http",
    ]
    for backend in ("mailserver_http", "acme_nginx"):
        assert config.split(f"\nbackend {backend}\n", 1)[1].startswith("  mode http\n")
    assert "backend mailserver_smtp\n  # PROXY" in config  # the other ports stay TCP


def test_it_forwards_only_what_postfix_and_dovecot_serve(haproxy_world, tmp_path):
    haproxy_world["home"].mail_backend = "postfix-dovecot"
    config = file_of(haproxy_unit(haproxy_world), haproxy.CONFIG)
    assert_golden(config, "gateway/haproxy-postfix-dovecot.cfg")
    text = config.decode()
    for port in (25, 465, 587, 993):
        assert f"10.0.1.2:{port} send-proxy-v2" in text
    for port in (443, 995, 4190):
        assert f"10.0.1.2:{port}" not in text
    assert "frontend https_in\n  bind :443\n  default_backend wkd_https\n" in text
    assert haproxy_check(tmp_path, config).returncode == 0


def test_it_binds_ipv6_only_when_the_gateway_has_an_ipv6_address(haproxy_world, tmp_path):
    config = file_of(haproxy_unit(haproxy_world), haproxy.CONFIG)
    assert b"[::]" not in config
    haproxy_world["vps"].public_ipv6 = "2001:db8::1"
    config = file_of(haproxy_unit(haproxy_world), haproxy.CONFIG)
    assert b"  bind [::]:25 v6only\n" in config
    assert haproxy_check(tmp_path, config).returncode == 0


def test_it_passes_haproxy_check_in_both_flavours(haproxy_world, tmp_path):
    all_haproxy = file_of(haproxy_unit(haproxy_world), haproxy.CONFIG)
    port_25 = file_of(traefik_unit(hosts()), traefik.HAPROXY_CONFIG)
    for content in (all_haproxy, port_25):
        result = haproxy_check(tmp_path, content)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ("default_backend mailserver_smtp", "default_backend nowhere"),
        ("send-proxy-v2 check", "send-proxy-v3 check"),
    ],
)
def test_it_proves_haproxy_check_catches_a_broken_file(world, tmp_path, good, bad):
    content = file_of(traefik_unit(world), traefik.HAPROXY_CONFIG).decode()
    assert good in content
    result = haproxy_check(tmp_path, content.replace(good, bad).encode())
    assert result.returncode != 0


def test_it_shares_one_haproxy_writer_between_the_flavours():
    home = haproxy.Peer("home", "10.0.1.2")
    assert haproxy.smtp_only_cfg(home, ipv6=True) == haproxy.haproxy_cfg(
        [haproxy.Frontend("smtp_in", 25, haproxy._backend(home, 25))],
        ipv6=True,
        run_as=haproxy.CONTAINER_UID,
    )


def test_it_writes_an_ipv6_tunnel_address_in_brackets(world, tmp_path):
    world["home"].tunnel_address = "fd00::2"
    config = file_of(traefik_unit(world), traefik.HAPROXY_CONFIG)
    assert b"server home [fd00::2]:25 send-proxy-v2" in config
    assert haproxy_check(tmp_path, config).returncode == 0
    _, dynamic, _ = documents(world)
    assert dynamic["http"]["services"]["mailu-web"]["loadBalancer"]["servers"] == [
        {"url": "http://[fd00::2]:80"}
    ]


# --- Traefik: schemas ----------------------------------------------------------------------------


def test_it_passes_the_schemas(world):
    static, dynamic, compose = documents(world)
    assert jsonschemas.problems("traefik-v3-static", static) == []
    assert jsonschemas.problems("traefik-v3-file-provider", dynamic) == []
    assert jsonschemas.problems("compose-spec", compose) == []


def test_it_proves_the_static_schema_catches_the_guides_http3_false(world):
    static, _, _ = documents(world)
    static["entryPoints"]["web-secure"]["http3"] = False
    assert jsonschemas.problems("traefik-v3-static", static)


def test_it_proves_the_static_schema_wants_durations_as_strings(world):
    static, _, _ = documents(world)
    static["certificatesResolvers"]["cf-dns"]["acme"]["dnsChallenge"]["delayBeforeCheck"] = 0
    (problem,) = jsonschemas.problems("traefik-v3-static", static)
    assert "not of type 'string'" in problem


def test_it_proves_the_file_provider_schema_catches_a_broken_service(world):
    _, dynamic, _ = documents(world)
    dynamic["tcp"]["services"]["mailu-sieve"]["loadBalancer"]["servers"] = []
    assert jsonschemas.problems("traefik-v3-file-provider", dynamic)


def test_it_proves_the_compose_schema_catches_an_unknown_key(world):
    _, _, compose = documents(world)
    compose["services"]["traefik"]["port"] = ["25:25"]
    assert jsonschemas.problems("compose-spec", compose)


def test_it_refuses_to_render_what_fails_a_schema(world, monkeypatch):
    monkeypatch.setattr(traefik, "TRAEFIK_IMAGE", ["traefik", "v3"])
    with pytest.raises(RenderError, match=r"docker-compose\.yml: services/traefik/image"):
        traefik.units(context(world, "vps"))


# --- Traefik: cross-references the schemas miss --------------------------------------------------


def test_it_finds_no_cross_reference_problem_in_what_it_renders(world):
    static, dynamic, _ = documents(world)
    assert traefik.problems(static, dynamic) == []


def test_it_finds_a_router_whose_service_is_missing(world):
    static, dynamic, _ = documents(world)
    del dynamic["tcp"]["services"]["mailu-imaps"]
    assert traefik.problems(static, dynamic) == [
        "tcp router 'mailu-imaps' uses 'mailu-imaps', which is not a tcp service."
    ]


def test_it_finds_a_router_whose_service_is_of_the_other_kind(world):
    static, dynamic, _ = documents(world)
    dynamic["http"]["routers"]["wkd"]["service"] = "mailu-sieve"
    assert traefik.problems(static, dynamic) == [
        "http router 'wkd' uses 'mailu-sieve', which is not a http service."
    ]


def test_it_finds_a_router_without_entry_points(world):
    static, dynamic, _ = documents(world)
    del dynamic["tcp"]["routers"]["mailu-sieve"]["entryPoints"]
    assert traefik.problems(static, dynamic) == [
        "tcp router 'mailu-sieve' names no entry point (it would take them all)."
    ]


def test_it_finds_a_router_on_an_undefined_entry_point(world):
    static, dynamic, _ = documents(world)
    del static["entryPoints"]["mailu-pop3s"]
    assert traefik.problems(static, dynamic) == [
        "tcp router 'mailu-pop3s' uses the undefined entry point 'mailu-pop3s'."
    ]


def test_it_finds_a_name_used_by_both_http_and_tcp(world):
    static, dynamic, _ = documents(world)
    tcp = dynamic["tcp"]
    tcp["routers"]["wkd"] = copy.deepcopy(tcp["routers"]["mailu-sieve"])
    tcp["services"]["mailu-web"] = copy.deepcopy(tcp["services"]["mailu-sieve"])
    assert traefik.problems(static, dynamic) == [
        "'wkd' is both an http and a tcp router.",
        "'mailu-web' is both an http and a tcp service.",
    ]


def test_it_finds_a_tls_router_on_port_25(world):
    static, dynamic, _ = documents(world)
    static["entryPoints"]["mailu-smtp"] = {"address": ":25"}
    dynamic["tcp"]["routers"]["mailu-imaps"]["entryPoints"] = ["mailu-smtp"]
    (problem,) = traefik.problems(static, dynamic)
    assert problem.startswith("tcp router 'mailu-imaps' is on port 25 ('mailu-smtp')")
    # The guide's own (commented out) port-25 router is plain TCP: that one is allowed.
    dynamic["tcp"]["routers"]["mailu-imaps"]["entryPoints"] = ["mailu-imaps"]
    dynamic["tcp"]["routers"]["mailu-sieve"]["entryPoints"] = ["mailu-smtp"]
    assert traefik.problems(static, dynamic) == []


def test_it_finds_an_http_router_on_port_25(world):
    static, dynamic, _ = documents(world)
    static["entryPoints"]["smtp"] = {"address": "0.0.0.0:25/tcp"}
    dynamic["http"]["routers"]["mailu-acme-only"]["entryPoints"] = ["smtp"]
    (problem,) = traefik.problems(static, dynamic)
    assert problem.startswith("http router 'mailu-acme-only' is on port 25 ('smtp')")


def test_it_finds_an_undefined_servers_transport(world):
    static, dynamic, _ = documents(world)
    del dynamic["tcp"]["serversTransports"]
    assert len(traefik.problems(static, dynamic)) == len(dynamic["tcp"]["services"])
    assert traefik.problems(static, dynamic)[0] == (
        "tcp service 'mailu-websecure' uses the undefined servers transport 'ppv2'."
    )


def test_it_finds_an_undefined_certificate_resolver(world):
    static, dynamic, _ = documents(world)
    del static["certificatesResolvers"]["cf-dns"]
    assert traefik.problems(static, dynamic) == [
        "http router 'wkd' uses the undefined certificate resolver 'cf-dns'."
    ]


def test_it_refuses_to_render_what_has_a_cross_reference_problem(world, monkeypatch):
    monkeypatch.setitem(traefik.ENTRY_POINTS, "mailu-imaps", 25)
    with pytest.raises(RenderError, match="'mailu-imaps' is on port 25"):
        traefik.units(context(world, "vps"))


# --- Traefik: what the guide's choices become ----------------------------------------------------


def test_it_sends_proxy_v2_through_a_servers_transport_only(world):
    _, dynamic, _ = documents(world)
    assert dynamic["tcp"]["serversTransports"] == {"ppv2": {"proxyProtocol": {"version": 2}}}
    for service in dynamic["tcp"]["services"].values():
        assert "proxyProtocol" not in service["loadBalancer"]
        assert service["loadBalancer"]["serversTransport"] == "ppv2"


def test_it_forwards_only_to_ports_where_home_expects_a_proxy_header(world):
    _, dynamic, _ = documents(world)
    for service in dynamic["tcp"]["services"].values():
        (server,) = service["loadBalancer"]["servers"]
        assert int(server["address"].rsplit(":", 1)[1]) in PROXY_PROTOCOL_PORTS


def test_it_keeps_http3_off(world):
    static, _, _ = documents(world)
    assert "http3" not in static["entryPoints"]["web-secure"]


def test_every_container_runs_on_the_hosts_network(world):
    """No published port: Docker's proxy would show Traefik and HAProxy the bridge's address
    for every IPv6 client instead of the client's, and the PROXY header would pass it on."""
    _, dynamic, compose = documents(world)
    for name, service in compose["services"].items():
        assert service["network_mode"] == "host" and "ports" not in service, name
    # So Traefik reaches the WKD container on loopback, not by a container name.
    wkd = dynamic["http"]["services"]["wkd-nginx"]["loadBalancer"]["servers"]
    assert wkd == [{"url": "http://127.0.0.1:8080"}]


def test_it_opens_the_api_on_loopback_only(world):
    static, _, compose = documents(world)
    assert static["api"] == {"dashboard": False, "insecure": True}
    assert static["entryPoints"]["traefik"] == {"address": "127.0.0.1:8081"}
    assert "command" not in compose["services"]["traefik"]


def test_it_mounts_what_traefik_yml_names(world):
    static, _, compose = documents(world)
    volumes = compose["services"]["traefik"]["volumes"]
    assert "./traefik-config/traefik.yml:/etc/traefik/traefik.yml:ro" in volumes
    assert f"./traefik-config/dynamic:{static['providers']['file']['directory']}:ro" in volumes
    storages = {r["acme"]["storage"] for r in static["certificatesResolvers"].values()}
    assert storages == {"/etc/traefik/acme/acme.json"}
    assert "./traefik-config/acme.json:/etc/traefik/acme/acme.json" in volumes


def test_it_mounts_the_wkd_files_where_the_nginx_renderer_expects_them(world):
    _, _, compose = documents(world)
    service = compose["services"][nginx.CONTAINER]
    assert service["image"] == nginx.CONTAINER_IMAGE
    wkd_root = context(world, "vps").wkd_root
    assert service["volumes"] == [
        f"./{wkd_root.removeprefix('/opt/traefik/')}:{nginx.CONTAINER_ROOT}:ro",
        f"./{nginx.CONTAINER_CONF.removeprefix('/opt/traefik/')}:{nginx.CONTAINER_CONF_TARGET}:ro",
    ]


def test_it_does_not_render_acme_json_but_creates_it_private(world):
    unit = traefik_unit(world)
    assert traefik.ACME not in {file.path for file in unit.files}
    first = unit.activate[0]
    assert "install -m 0600 /dev/null /opt/traefik/traefik-config/acme.json" in first
    assert unit.activate[1:3] == (
        "docker compose -f /opt/traefik/docker-compose.yml up -d",
        "docker kill -s HUP haproxy25",
    )
    live = "docker compose -f /opt/traefik/docker-compose.yml exec -T traefik sh -c "
    assert unit.activate[3].startswith(live)  # the running Traefik took the new file in


def test_it_creates_acme_json_only_when_missing(world, tmp_path):
    acme = tmp_path / "acme.json"
    script = traefik_unit(world).activate[0].replace(traefik.ACME, str(acme))
    subprocess.run(["bash", "-c", script], check=True)
    assert acme.read_bytes() == b""
    assert acme.stat().st_mode & 0o777 == 0o600
    acme.write_text("{}")
    acme.chmod(0o644)
    subprocess.run(["bash", "-c", script], check=True)
    assert acme.read_text() == "{}"
    assert acme.stat().st_mode & 0o777 == 0o600


def test_it_keeps_the_cloudflare_token_in_a_private_secret_file(world):
    unit = traefik_unit(world)
    (secret,) = [file for file in unit.files if file.secret]
    assert (secret.path, secret.mode, secret.content) == (
        traefik.SECRET,
        0o600,
        b"cf-token-secret",
    )
    static, _, compose = documents(world)
    assert b"cf-token-secret" not in file_of(unit, traefik.STATIC)
    assert compose["secrets"] == {"cf_api_token": {"file": "./secrets/cf_api_token"}}
    dns = static["certificatesResolvers"]["cf-dns"]["acme"]["dnsChallenge"]
    assert dns == {
        "provider": "cloudflare",
        "delayBeforeCheck": "0s",
        "resolvers": ["1.1.1.1:53", "8.8.8.8:53"],
    }


def test_it_leaves_dns_challenges_out_without_a_token(world):
    world["vps"].cloudflare_api_token = ""
    unit = traefik_unit(world)
    assert not any(file.secret for file in unit.files)
    static, dynamic, compose = documents(world)
    assert list(static["certificatesResolvers"]) == ["default", "alpn"]
    assert dynamic["http"]["routers"]["wkd"]["tls"] == {"certResolver": "default"}
    assert "secrets" not in compose
    assert "environment" not in compose["services"]["traefik"]
    assert traefik.problems(static, dynamic) == []


def test_it_recreates_traefik_when_its_static_file_changes(world):
    _, _, before = documents(world)
    world["vps"].acme_email = "other@example.com"
    _, _, after = documents(world)
    label = "org.mailgate.traefik-static-sha256"
    labels = before["services"]["traefik"]["labels"], after["services"]["traefik"]["labels"]
    assert labels[0][label] != labels[1][label]


# --- the setup's ACME server (MAILGATE_ACME_DIRECTORY, MAILGATE_ACME_CA_FILE) ---------------------

STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"


def staging_unit(world, directory: str = STAGING, ca_pem: bytes = b""):
    ctx = dataclasses.replace(context(world, "vps"), acme=AcmeServer(directory, ca_pem))
    (unit,) = traefik.units(ctx)
    return unit


def test_it_aims_every_resolver_at_the_setups_acme_server_and_trusts_its_cas(world):
    """What a user writes for a staging or private CA: ``caServer`` on every resolver, and the
    CA file Mailgate's own client trusts, rendered beside traefik.yml and mounted for
    ``caCertificates``."""
    ca, _ = self_signed("Private ACME server's CA", valid_until=30)
    unit = staging_unit(world, ca_pem=ca.encode())
    static = file_of(unit, traefik.STATIC).decode()
    assert (
        "  default:\n"
        "    acme:\n"
        "      email: user@example.com\n"
        "      storage: /etc/traefik/acme/acme.json\n"
        f"      caServer: {STAGING}\n"
        "      caCertificates:\n"
        "      - /etc/traefik/acme-ca/ca.pem\n"
        "      httpChallenge:\n"
        "        entryPoint: web\n"
    ) in static
    resolvers = yaml.safe_load(static)["certificatesResolvers"].values()
    assert [r["acme"]["caServer"] for r in resolvers] == [STAGING] * 3  # default, cf-dns, alpn
    trust = Bundle(host="vps", units=(unit,)).file(traefik.TRUST)
    assert trust.mode == 0o644 and trust.content.endswith(ca.encode())
    assert trust.content.startswith(b"# Managed by Mailgate.")
    compose = yaml.safe_load(file_of(unit, traefik.COMPOSE))
    assert (
        "./traefik-config/acme-ca:/etc/traefik/acme-ca:ro"
        in compose["services"]["traefik"]["volumes"]
    )
    staged = '-v "$STAGE"/opt/traefik/traefik-config/acme-ca:/etc/traefik/acme-ca:ro'
    assert staged in unit.checks[2]  # the staged check's Traefik loads the staged file


def test_it_names_no_acme_server_for_lets_encrypt_and_trusts_the_systems_cas(world):
    unit = traefik_unit(world)
    static = yaml.safe_load(file_of(unit, traefik.STATIC))
    for resolver in static["certificatesResolvers"].values():
        assert "caServer" not in resolver["acme"] and "caCertificates" not in resolver["acme"]
    assert traefik.TRUST not in {file.path for file in unit.files}
    assert "acme-ca" not in file_of(unit, traefik.COMPOSE).decode() + unit.checks[2]


def test_it_aims_at_a_staging_server_without_a_ca_file(world):
    unit = staging_unit(world)
    assert f"caServer: {STAGING}" in file_of(unit, traefik.STATIC).decode()
    assert "caCertificates" not in file_of(unit, traefik.STATIC).decode()
    assert traefik.TRUST not in {file.path for file in unit.files}


def test_it_recreates_traefik_when_the_acme_servers_cas_change(world):
    """Traefik makes its ACME client once: a new CA file must restart it, as a new traefik.yml
    does (the compose label)."""
    first, second = (self_signed(name, valid_until=30)[0] for name in ("CA one", "CA two"))
    labels = [
        yaml.safe_load(file_of(staging_unit(world, ca_pem=ca.encode()), traefik.COMPOSE))[
            "services"
        ]["traefik"]["labels"]
        for ca in (first, second)
    ]
    assert labels[0] != labels[1]


def test_it_writes_nothing_but_the_certificates_of_the_ca_file(world):
    ca, key = self_signed("Private ACME server's CA", valid_until=30)
    unit = staging_unit(world, ca_pem=f"a comment\n{key}{ca}".encode())
    trust = Bundle(host="vps", units=(unit,)).file(traefik.TRUST).content
    assert b"PRIVATE KEY" not in trust and b"a comment" not in trust
    assert trust.endswith(ca.encode())


@pytest.mark.parametrize(
    "directory",
    [
        "http://acme.example/directory",  # the account key's signatures would travel in clear
        "https://acme.example/dir\nlog:\n  level: DEBUG",
        "https:///directory",
        "https://acme.example:port/directory",
        "https://acme.example/a directory",
        "acme.example/directory",
    ],
)
def test_it_refuses_an_acme_directory_that_is_not_an_https_url(world, directory):
    with pytest.raises(RenderError, match=r"MAILGATE_ACME_DIRECTORY|control character"):
        staging_unit(world, directory)


def test_it_takes_the_acme_server_from_mailgates_own_settings(settings, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(self_signed("Private ACME server's CA")[0])
    settings.MAILGATE_ACME_DIRECTORY, settings.MAILGATE_ACME_CA_FILE = STAGING, str(ca_file)
    assert acme_server() == AcmeServer(STAGING, ca_file.read_bytes())
    settings.MAILGATE_ACME_CA_FILE = str(tmp_path / "missing.pem")
    with pytest.raises(RenderError, match="MAILGATE_ACME_CA_FILE cannot be read"):
        acme_server()


def test_it_refuses_a_ca_file_without_a_certificate(world):
    with pytest.raises(RenderError, match="MAILGATE_ACME_CA_FILE holds no PEM certificate"):
        staging_unit(world, ca_pem=b"not a certificate\n")


def test_it_routes_every_mail_host_name_once_and_the_gateways_web_names_per_domain(world):
    mail = with_directory(
        context(world, "vps"),
        domains=(
            DomainEntry("b.example", "mx.b.example"),
            DomainEntry("a.example", "mx.b.example"),
        ),
    ).directory
    assert haproxy.mail_names(mail) == [
        "mx.b.example",
        "autoconfig.mx.b.example",
        "autodiscover.mx.b.example",
        "mta-sts.mx.b.example",
    ]
    assert haproxy.web_names(mail) == [
        "autoconfig.a.example",
        "autoconfig.b.example",
        "autodiscover.a.example",
        "autodiscover.b.example",
        "mta-sts.a.example",
        "mta-sts.b.example",
        "openpgpkey.a.example",
        "openpgpkey.b.example",
    ]


def test_it_renders_valid_files_without_any_domain(world):
    ctx = with_directory(context(world, "vps"), domains=())
    (unit,) = traefik.units(ctx)
    dynamic = yaml.safe_load(file_of(unit, traefik.DYNAMIC))
    assert "mailu-websecure" not in dynamic["tcp"]["routers"]
    assert dynamic["http"]["routers"] == {}


# --- refusing bad values -------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["traefik-haproxy", "haproxy"])
@pytest.mark.parametrize("hostname", ["mail.example.com\nfrontend evil", "mail.example.com x"])
def test_it_refuses_a_mail_host_name_that_would_change_a_rule(world, flavour, hostname):
    world["vps"].gateway_proxy = flavour
    world["home"].mail_backend = "mailu"  # its web interface is routed by the mail host name
    ctx = with_directory(context(world, "vps"), domains=(DomainEntry("example.com", hostname),))
    renderer = traefik if flavour == "traefik-haproxy" else haproxy
    with pytest.raises(RenderError):
        renderer.units(ctx)


def test_it_refuses_a_newline_in_the_acme_email(world):
    world["vps"].acme_email = "user@example.com\nlog:\n  level: DEBUG"
    with pytest.raises(RenderError, match="control character"):
        traefik.units(context(world, "vps"))


def test_it_refuses_a_newline_in_the_cloudflare_token(world):
    world["vps"].cloudflare_api_token = "token\nextra"
    with pytest.raises(RenderError, match="control character"):
        traefik.units(context(world, "vps"))


def test_it_asks_for_an_acme_email(world):
    world["vps"].acme_email = ""
    with pytest.raises(RenderError, match="ACME e-mail"):
        traefik.units(context(world, "vps"))


def test_it_refuses_a_server_name_haproxy_would_split(haproxy_world):
    haproxy_world["home"].name = "home server"
    with pytest.raises(RenderError, match="not a plain name"):
        haproxy.units(context(haproxy_world, "vps"))


# --- the unit's own checks, run here as on the host ----------------------------------------------


def is_docker_only(script: str) -> bool:
    return script.startswith("if command -v docker >/dev/null 2>&1; then")


@pytest.mark.parametrize("flavour", ["traefik-haproxy", "haproxy"])
def test_it_passes_its_own_checks(world, tmp_path, flavour):
    world["vps"].gateway_proxy = flavour
    (unit,) = (traefik if flavour == "traefik-haproxy" else haproxy).units(context(world, "vps"))
    Bundle(host="vps", units=(unit,)).write_to(tmp_path)
    for script in unit.checks:
        if is_docker_only(script):
            # Not runnable here (no Docker daemon), and skipped on a host without Docker too;
            # the Traefik image's check runs on the traefik binary in test_render_traefik_check.py.
            continue
        result = run_check(unit.name, script, tmp_path)
        assert result.ok, result.output


@pytest.mark.parametrize(
    ("flavour", "path"),
    [("traefik-haproxy", traefik.HAPROXY_CONFIG), ("haproxy", haproxy.CONFIG)],
)
def test_it_proves_its_own_checks_catch_a_broken_file(world, tmp_path, flavour, path):
    world["vps"].gateway_proxy = flavour
    (unit,) = (traefik if flavour == "traefik-haproxy" else haproxy).units(context(world, "vps"))
    Bundle(host="vps", units=(unit,)).write_to(tmp_path)
    staged = tmp_path / path.lstrip("/")
    staged.write_text(staged.read_text().replace("mode tcp", "mode tcpp"))
    (script,) = [script for script in unit.checks if not is_docker_only(script)]
    result = run_check(unit.name, script, tmp_path)
    assert not result.ok
    assert "unknown proxy mode 'tcpp'" in result.output


def test_it_shares_no_path_with_the_wkd_nginx_unit(world):
    for gateway_proxy in ("traefik-haproxy", "haproxy"):
        world["vps"].gateway_proxy = gateway_proxy
        ctx = context(world, "vps")
        units = [*traefik.units(ctx), *haproxy.units(ctx), *nginx.units(ctx)]
        assert len(Bundle(host="vps", units=tuple(units)).units) == 2


def test_what_traefik_terminates_follows_mozilla_intermediate(world):
    _, dynamic, _ = documents(world)
    default = dynamic["tls"]["options"]["default"]
    assert default["minVersion"] == "VersionTLS12"
    assert all("GCM" in suite or "CHACHA20" in suite for suite in default["cipherSuites"])
    assert all(suite.startswith("TLS_ECDHE_") for suite in default["cipherSuites"])
    assert jsonschemas.problems("traefik-v3-file-provider", dynamic) == []


def test_traefik_in_front_of_postfix_dovecot_forwards_exactly_what_it_serves(world, tmp_path):
    """Postfix + Dovecot serve 25, 465, 587 and 993: Traefik routes 465, 587 and 993 (HAProxy
    takes 25) and opens no port that leads nowhere (443 is WKD's alone, no 995, no 4190)."""
    world["home"].mail_backend = "postfix-dovecot"
    static, dynamic, _ = documents(world)
    ports = {point["address"] for point in static["entryPoints"].values()}
    assert ports == {":80", ":443", ":465", ":587", ":993", "127.0.0.1:8081"}
    routers = dynamic["tcp"]["routers"]
    assert sorted(routers) == ["mailu-imaps", "mailu-submission", "mailu-submissions"]
    assert routers["mailu-submission"]["rule"] == "HostSNI(`*`)"  # STARTTLS: no SNI to read
    assert "tls" not in routers["mailu-submission"]
    servers = dynamic["tcp"]["services"]["mailu-submission"]["loadBalancer"]["servers"]
    assert servers == [{"address": "10.0.1.2:587"}]
    assert list(dynamic["http"]["routers"]) == ["mailu-acme-only", "wkd"]
    assert traefik.problems(static, dynamic) == []


def test_traefik_forwards_submission_to_mailu_too(world):
    static, dynamic, _ = documents(world)
    assert static["entryPoints"]["mailu-submission"]["address"] == ":587"
    assert "mailu-submission" in dynamic["tcp"]["routers"]


def test_the_port_25_haproxy_sees_ipv6_clients_as_they_are(world, tmp_path):
    """On the host's network, HAProxy binds IPv6 itself: a published port would pass IPv6
    clients through Docker's proxy, whose bridge address the PROXY header would then name."""
    world["vps"].public_ipv6 = "2001:db8::10"
    unit = traefik_unit(world)
    _, _, compose = documents(world)
    container = compose["services"][traefik.HAPROXY_CONTAINER]
    assert container["network_mode"] == "host" and "ports" not in container
    config = file_of(unit, traefik.HAPROXY_CONFIG)
    assert b"  bind [::]:25 v6only\n" in config
    assert haproxy_check(tmp_path, config).returncode == 0
