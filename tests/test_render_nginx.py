"""The gateway's nginx for the Web Key Directory: both flavours against the Mailu-behind-Traefik
guide (docs/reference-setups.md), real ``nginx -t`` through the unit's own check, and a real nginx
serving keys over both WKD methods."""

import os
import socket
import ssl
import struct
import subprocess
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.error import HTTPError

import pytest

from gateway import client_setup
from gateway.bundle import Bundle, RenderError
from hosts.render import nginx
from tests import render_world
from tests.helpers import self_signed
from tests.servers import for_the_test, free_port, get, serving

HOST_CONF = "/etc/nginx/conf.d/mailgate-wkd.conf"
CONTAINER_CONF = "/opt/traefik/wkd/nginx.conf"
HASH = "iffe93qcsgp4c8ncbb378rxjo6cn9q6u"  # gpg-wks-client --print-wkd-hash test@example.com
KEY = bytes(range(256)) + b"\x99\x01\x0d not UTF-8 \xff\xfe"  # stands in for a binary key


def world(proxy: str = "traefik-haproxy") -> dict:
    hosts = render_world.hosts()
    hosts["vps"].gateway_proxy = proxy
    return hosts


def unit(hosts: dict):
    (only,) = nginx.units(render_world.context(hosts, "vps"))
    return only


def stage(hosts: dict, tmp_path: Path) -> Path:
    root = tmp_path / "stage"
    Bundle(host="vps", units=(unit(hosts),)).write_to(root)
    return root


def run(snippet: str, staged: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", snippet],
        env={**os.environ, "STAGE": str(staged), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def certificate_files(tmp_path: Path) -> tuple[Path, Path]:
    cert_path, key_path = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    certificate, key = self_signed("openpgpkey.example.com")
    cert_path.write_text(certificate)
    key_path.write_text(key)
    return cert_path, key_path


def tls_world(tmp_path: Path) -> dict:
    hosts = world("haproxy")
    cert_path, key_path = certificate_files(tmp_path)
    hosts["vps"].tls_certificate_path = str(cert_path)
    hosts["vps"].tls_key_path = str(key_path)
    return hosts


# --- rendering -----------------------------------------------------------------------------------


def test_it_renders_the_guides_container_server():
    rendered = unit(world())
    assert [file.path for file in rendered.files] == [
        CONTAINER_CONF,
        "/opt/traefik/wkd/public/.well-known/openpgpkey/example.com/policy",
        "/opt/traefik/wkd/public/.well-known/openpgpkey/family.example/policy",
        "/opt/traefik/wkd/public/client-setup/example.com/config-v1.1.xml",
        "/opt/traefik/wkd/public/client-setup/example.com/autodiscover.xml",
        "/opt/traefik/wkd/public/client-setup/family.example/config-v1.1.xml",
        "/opt/traefik/wkd/public/client-setup/family.example/autodiscover.xml",
    ]
    assert {file.mode for file in rendered.files} == {0o644}
    render_world.assert_golden(rendered.files[0].content, "nginx/wkd.conf")


def test_it_renders_a_tls_server_behind_haproxy():
    rendered = unit(world("haproxy"))
    assert [file.path for file in rendered.files] == [
        HOST_CONF,
        "/var/lib/mailgate/wkd/.well-known/openpgpkey/example.com/policy",
        "/var/lib/mailgate/wkd/.well-known/openpgpkey/family.example/policy",
        "/var/lib/mailgate/wkd/client-setup/example.com/config-v1.1.xml",
        "/var/lib/mailgate/wkd/client-setup/example.com/autodiscover.xml",
        "/var/lib/mailgate/wkd/client-setup/family.example/config-v1.1.xml",
        "/var/lib/mailgate/wkd/client-setup/family.example/autodiscover.xml",
    ]
    assert rendered.activate == ("systemctl reload-or-restart nginx",)
    render_world.assert_golden(rendered.files[0].content, "nginx/mailgate-wkd.conf")


def test_it_writes_the_policy_gpg_wks_client_writes():
    policy = unit(world()).files[1]
    render_world.assert_golden(policy.content, "nginx/policy")


def test_it_shares_the_location_rules_between_the_flavours():
    def locations(content: bytes) -> str:
        text = content.decode()
        return text[text.index("    # Advanced method") : text.index("# The autodiscover")]

    container, host = unit(world()).files[0], unit(world("haproxy")).files[0]
    assert locations(container.content) == locations(host.content)


def test_it_renders_nothing_for_a_host_that_is_not_a_gateway():
    hosts = world()
    assert nginx.units(render_world.context(hosts, "home")) == []
    hosts["vps"].is_gateway = False
    assert nginx.units(render_world.context(hosts, "vps")) == []


def test_it_renders_identical_bytes_twice():
    for proxy in ("traefik-haproxy", "haproxy"):
        assert unit(world(proxy)) == unit(world(proxy))


def test_it_refuses_a_newline_in_a_domain():
    ctx = render_world.context(world(), "vps")
    domain = render_world.DomainEntry("example.com\n}", "mail.example.com")
    with pytest.raises(RenderError, match="control character"):
        nginx.units(render_world.with_directory(ctx, domains=(domain,)))


def test_it_refuses_a_newline_in_the_certificate_path():
    hosts = world("haproxy")
    hosts["vps"].tls_certificate_path = "/etc/ssl/wkd.pem\nroot /"
    with pytest.raises(RenderError, match="control character"):
        unit(hosts)


def test_it_refuses_a_value_that_would_end_an_nginx_directive():
    hosts = world("haproxy")
    hosts["vps"].tls_key_path = "/etc/ssl/wkd.key; autoindex on"
    with pytest.raises(RenderError, match="not an absolute path"):
        unit(hosts)


def test_it_refuses_a_mail_server_address_that_would_end_an_nginx_directive():
    hosts = world("haproxy")
    hosts["home"].tunnel_address = "10.0.1.2:80; return 200 x"
    with pytest.raises(RenderError, match="not an IP address"):
        unit(hosts)


def test_it_answers_http01_only_behind_haproxy_and_only_with_a_mail_server():
    """The HTTP-01 server (RFC 8555 §8.3) takes HAProxy's challenges: none in the Traefik
    container, where Traefik owns port 80, and none before a mail server is in the tunnel."""
    assert b"acme-challenge" not in unit(world()).files[0].content
    hosts = world("haproxy")
    assert b"\nserver {\n    listen 127.0.0.1:8081;\n" in unit(hosts).files[0].content
    hosts["home"].is_mailserver = False
    assert b"acme-challenge" not in unit(hosts).files[0].content


# --- checks and activation -----------------------------------------------------------------------


def test_it_passes_nginx_t_with_tls_and_the_proxy_protocol(tmp_path):
    hosts = tls_world(tmp_path)
    result = run(unit(hosts).checks[0], stage(hosts, tmp_path))
    assert result.returncode == 0, result.stderr


def test_it_passes_nginx_t_for_the_container_file(tmp_path):
    hosts = world()
    result = run(unit(hosts).checks[0], stage(hosts, tmp_path))
    assert result.returncode == 0, result.stderr


def test_it_fails_nginx_t_when_the_certificate_is_missing(tmp_path):
    hosts = tls_world(tmp_path)
    hosts["vps"].tls_certificate_path = str(tmp_path / "missing.pem")
    result = run(unit(hosts).checks[0], stage(hosts, tmp_path))
    assert result.returncode != 0
    assert "missing.pem" in result.stderr


def test_it_fails_nginx_t_on_a_syntax_error(tmp_path):
    for hosts, conf in ((tls_world(tmp_path), HOST_CONF), (world(), CONTAINER_CONF)):
        staged = stage(hosts, tmp_path)
        file = staged / conf.lstrip("/")
        file.write_text(file.read_text().replace("autoindex off;", "autoindex off", 1))
        result = run(unit(hosts).checks[0], staged)
        assert result.returncode != 0
        assert "emerg" in result.stderr


def test_it_checks_with_the_image_when_the_host_has_no_nginx(tmp_path):
    calls = fake_docker(tmp_path, 'echo "$*" >> "$CALLS"')
    staged = stage(world(), tmp_path)
    path = f"{tmp_path / 'bin'}:/usr/bin:/bin"  # nginx lives in /usr/sbin
    result = run(unit(world()).checks[0], staged, PATH=path, CALLS=str(calls))
    assert result.returncode == 0, result.stderr
    assert calls.read_text() == (
        f"run --rm --network none -v {staged}/opt/traefik/wkd/nginx.conf:"
        "/etc/nginx/conf.d/default.conf:ro nginx:1.29.3 nginx -t -q\n"
    )


INSPECT = "inspect --format {{.State.Running}} wkd_nginx"
CAT = "exec wkd_nginx cat /etc/nginx/conf.d/default.conf"


@pytest.mark.parametrize(
    ("state", "inside", "expected"),
    [
        ("", "", [INSPECT]),  # no container yet (or no daemon): nothing to reload
        ("false", "", [INSPECT]),
        ("true", "new", [INSPECT, CAT, "exec wkd_nginx nginx -s reload"]),
        ("true", "old", [INSPECT, CAT, "restart wkd_nginx"]),  # still the replaced file
    ],
)
def test_it_reloads_the_container_only_when_it_runs(tmp_path, state, inside, expected):
    conf = tmp_path / "wkd.conf"
    conf.write_text("new\n")
    calls = fake_docker(
        tmp_path,
        'echo "$*" >> "$CALLS"',
        'if [ "$1" = inspect ]; then [ -n "$STATE" ] && echo "$STATE" || exit 1; fi',
        'if [ "$1 $3" = "exec cat" ]; then echo "$INSIDE"; fi',
    )
    snippet = unit(world()).activate[0].replace(CONTAINER_CONF, str(conf))
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "CALLS": str(calls)}
    result = run(snippet, tmp_path, **env, STATE=state, INSIDE=inside)
    assert result.returncode == 0, result.stderr
    assert calls.read_text().splitlines() == expected


def test_it_writes_snippets_shellcheck_accepts():
    for proxy in ("traefik-haproxy", "haproxy"):
        rendered = unit(world(proxy))
        for snippet in (*rendered.checks, *rendered.activate):
            result = subprocess.run(
                ["shellcheck", "-s", "bash", "-"], input=snippet, capture_output=True, text=True
            )
            assert result.returncode == 0, result.stdout


def fake_docker(tmp_path: Path, *body: str) -> Path:
    script = tmp_path / "bin" / "docker"
    script.parent.mkdir()
    script.write_text("\n".join(["#!/bin/bash", *body, ""]))
    script.chmod(0o755)
    calls = tmp_path / "calls"
    calls.touch()
    return calls


def test_it_serves_keys_over_the_advanced_and_the_direct_method(tmp_path):
    hosts = world()
    staged = stage(hosts, tmp_path)
    root = staged / "opt/traefik/wkd/public"
    key_file = root / ".well-known/openpgpkey/example.com/hu" / HASH
    key_file.parent.mkdir()
    key_file.write_bytes(KEY)
    port = free_port()
    conf = (staged / CONTAINER_CONF.lstrip("/")).read_bytes()
    server = for_the_test(conf, root, port, "listen 127.0.0.1:8080", "/usr/share/nginx/html")

    with serving(tmp_path, server, port):
        base = f"http://127.0.0.1:{port}/.well-known/openpgpkey"
        advanced = f"{base}/example.com/hu/{HASH}?l=test"
        host = "openpgpkey.example.com"

        with get(advanced, host=host) as response:
            assert response.read() == KEY
            assert response.headers["Content-Type"] == "application/octet-stream"
            assert response.headers["Access-Control-Allow-Origin"] == "*"
        with get(advanced, "HEAD", host=host) as response:
            assert response.status == 200
            assert response.headers["Content-Length"] == str(len(KEY))
            assert response.read() == b""
        with get(f"{base}/hu/{HASH}?l=test", host="example.com") as response:
            assert response.read() == KEY
            assert response.headers["Content-Type"] == "application/octet-stream"
        policy = (root / ".well-known/openpgpkey/example.com/policy").read_bytes()
        assert policy.endswith(b"# Policy flags for domain example.com\n")
        with get(f"{base}/example.com/policy", host=host) as response:
            assert response.read() == policy
        with get(f"{base}/policy", host="example.com") as response:
            assert response.read() == policy

        for url, host_header in [
            (f"{base}/example.com/hu/{'y' * 32}", host),  # no such key
            (f"{base}/family.example/hu/{HASH}", "openpgpkey.family.example"),
            (f"{base}/hu/{HASH}", host),  # the direct method on the advanced name
            (f"{base}/hu/{HASH}", "unknown.example"),  # a domain Mailgate does not serve
            (f"http://127.0.0.1:{port}/index.html", host),
        ]:
            with pytest.raises(HTTPError) as missing:
                get(url, host=host_header)
            assert missing.value.code == 404, url


def proxy_v2_header(client: str, client_port: int, port: int) -> bytes:
    """What HAProxy's ``send-proxy-v2`` puts in front of a TCP over IPv4 connection."""
    addresses = socket.inet_aton(client) + socket.inet_aton("127.0.0.1")
    body = addresses + struct.pack("!HH", client_port, port)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def test_it_serves_tls_behind_a_proxy_header_and_logs_the_client(tmp_path):
    hosts = tls_world(tmp_path)
    staged = stage(hosts, tmp_path)
    root = staged / "var/lib/mailgate/wkd"
    (root / ".well-known/openpgpkey/example.com/hu").mkdir()
    (root / ".well-known/openpgpkey/example.com/hu" / HASH).write_bytes(KEY)
    port = free_port()
    conf = (staged / HOST_CONF.lstrip("/")).read_bytes()
    server = for_the_test(conf, root, port, "listen 127.0.0.1:8443", "/var/lib/mailgate/wkd")
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE  # a throwaway self-signed one

    with serving(tmp_path, server, port) as run_dir:
        with socket.create_connection(("127.0.0.1", port), 5) as raw:
            raw.sendall(proxy_v2_header("203.0.113.7", 40000, port))
            with tls.wrap_socket(raw, server_hostname="openpgpkey.example.com") as conn:
                path = f"/.well-known/openpgpkey/example.com/hu/{HASH}"
                conn.sendall(
                    f"GET {path} HTTP/1.0\r\nHost: openpgpkey.example.com\r\n\r\n".encode()
                )
                reply = b"".join(iter(lambda: conn.recv(65536), b""))
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert b"Content-Type: application/octet-stream" in head
        assert body == KEY
        time.sleep(0.2)  # the access log line is written after the response
        assert (run_dir / "access.log").read_text().startswith("203.0.113.7 ")


OUTLOOK_REQUEST = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/'
    'requestschema/2006"><Request><EMailAddress>{address}</EMailAddress>'
    "<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/"
    "responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"
)


def post(url: str, body: str, host: str):
    request = urllib.request.Request(
        url, data=body.encode(), method="POST", headers={"Host": host, "Content-Type": "text/xml"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return opener.open(request, timeout=5)


@pytest.mark.parametrize("proxy", ["traefik-haproxy", "haproxy"])
def test_it_answers_mail_programs_for_every_domain_it_serves(tmp_path, proxy):
    hosts = tls_world(tmp_path) if proxy == "haproxy" else world()
    staged = stage(hosts, tmp_path)
    if proxy == "haproxy":
        conf_path, listen = HOST_CONF, "listen 127.0.0.1:8443 ssl proxy_protocol"
    else:
        conf_path, listen = CONTAINER_CONF, "listen 127.0.0.1:8080 default_server"
    text = (staged / conf_path.lstrip("/")).read_text()
    real_root = "/var/lib/mailgate/wkd" if proxy == "haproxy" else "/usr/share/nginx/html"
    root = staged / ("var/lib/mailgate/wkd" if proxy == "haproxy" else "opt/traefik/wkd/public")
    port, answers = free_port(), free_port()
    # The public server in plain HTTP on a free port; the answers server on another.
    text = text.replace(listen, f"listen 127.0.0.1:{port}", 1).replace(
        "127.0.0.1:8082", f"127.0.0.1:{answers}"
    )
    server = text.replace(f"root {real_root};", f"root {root};")

    with serving(tmp_path, server, port):
        base = f"http://127.0.0.1:{port}"
        for url, host in [
            (
                f"{base}/mail/config-v1.1.xml?emailaddress=john%40example.com",
                "autoconfig.example.com",
            ),
            (f"{base}/.well-known/autoconfig/mail/config-v1.1.xml", "example.com"),
        ]:
            with get(url, host=host) as response:
                assert response.headers["Content-Type"] == "application/xml"
                config = ET.fromstring(response.read())  # noqa: S314 (Mailgate's own answer)
            incoming = config.find("emailProvider/incomingServer")
            assert incoming.findtext("hostname") == "mail.example.com"
            assert incoming.findtext("port") == "993"
            assert incoming.findtext("username") == "%EMAILADDRESS%"

        for path in ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"):
            body = OUTLOOK_REQUEST.format(address="john@family.example")
            with post(f"{base}{path}", body, "autodiscover.family.example") as response:
                assert response.headers["Content-Type"] == "application/xml"
                answer = response.read().decode()
            assert "%EMAILADDRESS%" not in answer
            namespace = {"o": client_setup.OUTLOOK_NS}
            protocols = ET.fromstring(answer).findall(  # noqa: S314 (Mailgate's own answer)
                ".//o:Protocol", namespace
            )
            assert [p.findtext("o:LoginName", namespaces=namespace) for p in protocols] == [
                "john@family.example",
                "john@family.example",
            ]
            assert protocols[0].findtext("o:Server", namespaces=namespace) == "mail.example.com"

        refused = [
            ("GET", "/mail/config-v1.1.xml", "autoconfig.unknown.example", None),
            ("GET", "/mail/config-v1.1.xml", "openpgpkey.example.com", None),
            ("GET", "/autodiscover/autodiscover.xml", "autodiscover.example.com", None),
            (
                "POST",
                "/autodiscover/autodiscover.xml",
                "autodiscover.example.com",
                "a@unknown.example",
            ),
            ("POST", "/autodiscover/autodiscover.xml", "example.com", "a<b>@example.com"),
            ("POST", "/autodiscover/autodiscover.xml", "example.com", "a&amp;b@example.com"),
            ("POST", "/autodiscover/autodiscover.xml", "example.com", "a@example.com.evil"),
        ]
        for method, path, host, address in refused:
            with pytest.raises(HTTPError) as missing:
                if method == "GET":
                    get(f"{base}{path}", host=host)
                else:
                    post(f"{base}{path}", OUTLOOK_REQUEST.format(address=address), host)
            assert missing.value.code == 404, (method, path, host, address)
        # The answers server serves nothing it is not asked for by name.
        with pytest.raises(HTTPError) as missing:
            get(f"http://127.0.0.1:{answers}/client-setup/example.com/autodiscover.xml")
        assert missing.value.code == 404
