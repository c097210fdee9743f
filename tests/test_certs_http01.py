"""HTTP-01 through the all-HAProxy gateway (RFC 8555 §8.3), for a zone Mailgate does not push:
a real Pebble validates against the real HAProxy and nginx, running the configuration Mailgate
renders for the gateway in a lab host (a network namespace with sshd), to which Mailgate writes
the challenge files over SSH. Pebble resolves the names with a real named, which points them
at the lab host, and connects to its port 80; the mail server behind the gateway is a plain
HTTP server in the same namespace, at the tunnel address HAProxy and nginx forward to."""

import re
import sys
import time
import urllib.error

import pytest

from certs import issuer, services
from certs.choices import Outcome
from certs.models import Certificate
from certs.probes import certificate_findings
from gateway.status import Colour
from hosts.models import Host
from hosts.render import haproxy, nginx, render_host
from hosts.render.context import ACME_CHALLENGE_ROOT
from lab.hosts import LabHost, sh
from tests import zones_named as dns_server
from tests.certs_world import acme_for_mailgate, san, verify
from tests.helpers import self_signed
from tests.servers import get, stop
from tests.world import build_infrastructure

DOMAIN = "family.example"
GATEWAY_NAMES = sorted(
    f"{prefix}.{DOMAIN}"
    for prefix in ("autoconfig", "autodiscover", "mail", "mta-sts", "openpgpkey")
)
HOME_TOKEN = "token-of-a-certbot-at-home"
# The mail server's port 80. Its tunnel address is the lab host's own here, inside HAProxy's
# ":80", so it shares the port as HAProxy's listeners do (SO_REUSEPORT); Linux gives each
# connection to the most specific listener.
HOME_SERVER = """
import functools, http.server, sys
class Server(http.server.ThreadingHTTPServer):
    allow_reuse_port = True
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])
Server((sys.argv[1], 80), handler).serve_forever()
"""
# What the gateway keeps to itself: its certificates and Mailgate's folder (challenges, WKD).
GATEWAY_FILES = ("/etc/letsencrypt", "/var/lib/mailgate")
# nginx's main configuration around the rendered file, as Debian's (workers as www-data).
NGINX_MAIN = """user www-data;
pid {run}/nginx.pid;
error_log {run}/error.log;
events {{}}
http {{
  include /etc/nginx/mime.types;
  access_log {run}/access.log;
  include {run}/site.conf;
}}
"""


@pytest.fixture(name="gateway")
def gateway_fixture():
    host = LabHost.create(private_dirs=GATEWAY_FILES)
    yield host
    host.close()


@pytest.fixture(name="zone")
def zone_fixture(tmp_path, gateway):
    """The domain's zone, every public name at the gateway (as Mailgate's records say), on a
    named Mailgate does not push to."""
    records = [f"{name}. IN A {gateway.address}" for name in GATEWAY_NAMES]
    zones = {DOMAIN: dns_server.zone_text(DOMAIN, *records)}
    with dns_server.running(tmp_path / "named", zones) as server:
        yield server


@pytest.fixture(name="pebble")
def pebble_fixture(tmp_path, zone):
    with acme_for_mailgate(tmp_path, zone, http_port=haproxy.HTTP_PORT) as server:
        yield server


@pytest.fixture(name="world")
def world_fixture(family, gateway):
    """The reference infrastructure (tests/certs_world.py), the gateway reached over SSH in the lab
    host; no zone has a push target."""
    world = build_infrastructure()
    vps = world["vps"]
    vps.ssh_address, vps.ssh_host_key = gateway.address, gateway.host_key
    vps.ssh_private_key = gateway.client_key
    vps.save()
    return world


@pytest.fixture(name="proxies")
def proxies_fixture(world, gateway):
    """HAProxy and nginx in the lab host with the files Mailgate renders for the gateway, and
    the mail server's port 80 at its tunnel address; stopped by their pids."""
    bundle = render_host(Host.objects.get(pk=world["vps"].pk))
    site = bundle.file(nginx.HOST_CONF).content.decode()
    _install_certificate(gateway, site)
    run = gateway.root / "nginx"
    run.mkdir()
    (run / "site.conf").write_text(site)
    (run / "nginx.conf").write_text(NGINX_MAIN.format(run=run))
    (gateway.root / "haproxy.cfg").write_bytes(bundle.file(haproxy.CONFIG).content)
    home = str(world["home"].tunnel_address)
    sh("ip", "-n", gateway.name, "addr", "add", f"{home}/32", "dev", "lo")
    served = gateway.root / "home/.well-known/acme-challenge"
    served.mkdir(parents=True)
    (served / HOME_TOKEN).write_text(f"{HOME_TOKEN}.from-home")
    log = (gateway.root / "programs.log").open("w")
    started = {
        "home": [sys.executable, "-c", HOME_SERVER, home, served.parents[1]],
        "nginx": ["nginx", "-p", f"{run}/", "-c", str(run / "nginx.conf"), "-g", "daemon off;"],
        "haproxy": ["haproxy", "-db", "-f", str(gateway.root / "haproxy.cfg")],
    }
    processes = {
        name: gateway.popen(*[str(part) for part in command], stdout=log, stderr=log)
        for name, command in started.items()
    }
    try:
        _wait_for(gateway, run, log)
        yield processes
    finally:
        for process in processes.values():
            if process.poll() is None:
                stop(process)
        log.close()


def _install_certificate(gateway: LabHost, site: str) -> None:
    """A certificate where the WKD server reads it, so that nginx starts (not the one asked for)."""
    certificate = re.search(r"ssl_certificate (\S+);", site).group(1)
    key = re.search(r"ssl_certificate_key (\S+);", site).group(1)
    fullchain, private_key = self_signed("mail.family.example")
    for path, content in ((certificate, fullchain), (key, private_key)):
        copy = gateway.root / "private" / path.strip("/")
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(content)


def _wait_for(gateway: LabHost, run, log) -> None:
    """Until a token at home comes back through HAProxy and nginx."""
    for _ in range(100):
        try:
            return _challenge(gateway, HOME_TOKEN)
        except OSError:
            time.sleep(0.1)
    pytest.fail(
        f"the gateway does not answer on port 80: {(gateway.root / 'programs.log').read_text()}"
    )


def _challenge(gateway: LabHost, token: str, host: str = f"mail.{DOMAIN}") -> str:
    """What the gateway's port 80 answers for ``token``, as Pebble asks for it."""
    url = f"http://{gateway.address}/.well-known/acme-challenge/{token}"
    with get(url, host=host) as response:
        return response.read().decode()


def _challenge_files(gateway: LabHost) -> list[str]:
    return gateway.run(f"ls -A {ACME_CHALLENGE_ROOT} 2>/dev/null").stdout.split()


def test_it_issues_over_http01_through_the_gateway_and_leaves_no_file(
    world, pebble, proxies, gateway, zone, tmp_path
):
    issued = services.certificates_renew()
    assert [i.outcome for i in issued] == [Outcome.ISSUED, Outcome.ISSUED], issued[0].message
    by_purpose = {i.certificate.purpose: i for i in issued}
    assert san(by_purpose["gateway"]) == GATEWAY_NAMES
    assert san(by_purpose["mail"]) == [f"mail.{DOMAIN}"]
    for issuance in issued:
        assert "Pebble" in issuance.issuer and issuance.serial
        result = verify(issuance, pebble.root, tmp_path)
        assert result.returncode == 0, result.stderr
    # Pebble fetched every name's key authorization from nginx, through HAProxy's port 80.
    access = (gateway.root / "nginx/access.log").read_text()
    fetched = re.findall(
        r'"GET /\.well-known/acme-challenge/([A-Za-z0-9_-]+) HTTP/1\.1" (\d+)', access
    )
    answers = [(token, status) for token, status in fetched if token != HOME_TOKEN]
    assert len({token for token, _ in answers}) == len(GATEWAY_NAMES) + 1  # per name and order
    assert {status for _, status in answers} == {"200"}
    assert _challenge_files(gateway) == []
    assert zone.values(f"_acme-challenge.mail.{DOMAIN}", "TXT") == []  # no DNS-01
    assert [f.colour for f in certificate_findings()] == [Colour.GREEN, Colour.GREEN]


def test_a_failed_http01_challenge_keeps_the_old_certificate_and_shows_red(
    world, pebble, proxies, gateway
):
    [first, _] = services.certificates_renew()
    assert first.outcome == Outcome.ISSUED, first.message
    stop(proxies["nginx"])  # HAProxy now answers the challenges with 503
    attempt = services.certificate_force_renewal(certificate=first.certificate)
    assert attempt.outcome == Outcome.FAILED
    assert "The CA refused the challenges" in attempt.message
    assert "503" in attempt.message, attempt.message
    certificate = Certificate.objects.get(pk=first.certificate_id)
    assert certificate.current.pk == first.pk and certificate.latest.pk == attempt.pk
    assert _challenge_files(gateway) == []
    [finding] = [f for f in certificate_findings() if f.key == f"certificates:{certificate.pk}"]
    assert finding.colour == Colour.RED
    assert "the host keeps the one issued by" in finding.message


def test_the_challenge_file_is_served_on_port_80_and_other_tokens_reach_the_mail_server(
    world, proxies, gateway
):
    """A key authorization written over SSH is served to any name on port 80, as a file of
    nginx's own (0644, whole); a token Mailgate does not have, and every other path, come from
    the mail server (a certbot there)."""
    web = issuer.GatewayChallenges(Host.objects.get(pk=world["vps"].pk))
    web.publish("mailgate-token_1", "mailgate-token_1.thumbprint")
    stat = gateway.run(f"stat -c '%a %U' {ACME_CHALLENGE_ROOT}/mailgate-token_1").stdout
    assert stat.split() == ["644", "root"]
    assert _challenge(gateway, "mailgate-token_1", host=f"openpgpkey.{DOMAIN}") == (
        "mailgate-token_1.thumbprint"
    )
    assert _challenge(gateway, HOME_TOKEN) == f"{HOME_TOKEN}.from-home"
    with pytest.raises(urllib.error.HTTPError) as missing:
        _challenge(gateway, "nobody-has-this-one")
    assert missing.value.code == 404  # the mail server's answer, passed on
    web.withdraw()
    assert _challenge_files(gateway) == []
    with pytest.raises(urllib.error.HTTPError):
        _challenge(gateway, "mailgate-token_1")


def test_it_refuses_a_token_that_is_no_file_name(world):
    web = issuer.GatewayChallenges(Host.objects.get(pk=world["vps"].pk))
    with pytest.raises(issuer.IssueError, match="not base64url"):
        web.publish("../../etc/passwd", "x")


def test_it_says_when_the_challenge_file_cannot_be_written(world, pebble, gateway):
    gateway.run(f"touch {ACME_CHALLENGE_ROOT}")  # a file where the folder belongs
    attempt = services.certificates_renew()[0]
    assert attempt.outcome == Outcome.FAILED
    assert attempt.message.startswith(f"Could not write {ACME_CHALLENGE_ROOT}/"), attempt.message
    assert "on vps: mkdir: cannot create directory" in attempt.message
