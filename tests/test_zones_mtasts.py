"""MTA-STS: the policy file joins the gateway's bundle, its id in the ``_mta-sts`` record changes
with it, and a real nginx serves it at https://mta-sts.<domain>/.well-known/mta-sts.txt (and
nothing for other names)."""

from urllib.error import HTTPError

import pytest

from gateway.bundle import Bundle
from hosts.models import Host
from hosts.render import haproxy, nginx, render_host
from hosts.render.context import load_context
from tests.servers import for_the_test, free_port, get, serving
from tests.world import build_infrastructure
from zones import mtasts
from zones.models import ZoneSettings
from zones.records import expected_records
from zones.selectors import dns_facts

POLICY_PATH = "/var/lib/mailgate/wkd/mta-sts/family.example/mta-sts.txt"
TESTING = b"version: STSv1\r\nmode: testing\r\nmx: mail.family.example\r\nmax_age: 604800\r\n"


@pytest.fixture
def world(family, other):
    return build_infrastructure()


def txt_id(domain: str) -> str:
    (record,) = [r for r in expected_records(dns_facts(), domain) if r.name == f"_mta-sts.{domain}"]
    return record.values[0].removeprefix("v=STSv1; id=")


def test_it_adds_each_domains_policy_to_the_gateways_bundle(world):
    bundle = render_host(world["vps"])
    assert bundle.file(POLICY_PATH).content == TESTING
    assert bundle.file("/var/lib/mailgate/wkd/mta-sts/other.example/mta-sts.txt")
    assert txt_id("family.example") == mtasts.policy_id(TESTING)
    assert all("mta-sts" not in f.path for f in render_host(world["home"]).files)


def test_a_new_policy_gets_a_new_id(world, family):
    before = txt_id("family.example")
    ZoneSettings.objects.create(domain=family, mta_sts_mode="enforce", mta_sts_max_age=86400)
    policy = render_host(world["vps"]).file(POLICY_PATH).content
    assert policy == TESTING.replace(b"testing", b"enforce").replace(b"604800", b"86400")
    assert txt_id("family.example") == mtasts.policy_id(policy) != before
    assert txt_id("other.example") == mtasts.policy_id(
        render_host(world["vps"]).file(POLICY_PATH.replace("family", "other")).content
    )


def test_the_gateway_routes_mta_sts_names_to_its_nginx(world):
    # Beside Mailu, whose web interface also takes 443, by the name; beside Postfix + Dovecot,
    # which serve no HTTPS, the gateway's nginx takes all of 443.
    config = render_host(world["vps"]).file("/etc/haproxy/haproxy.cfg").text
    assert "frontend https_in\n  bind :443\n  default_backend wkd_https\n" in config
    Host.objects.filter(pk=world["home"].pk).update(mail_backend="mailu")
    config = render_host(Host.objects.get(pk=world["vps"].pk)).file("/etc/haproxy/haproxy.cfg")
    assert "acl sni_wkd_https req.ssl_sni -i mta-sts.family.example" in config.text


def test_nginx_serves_the_policy_to_the_mta_sts_name_only(world, tmp_path):
    Host.objects.filter(pk=world["vps"].pk).update(
        gateway_proxy="traefik-haproxy", acme_email="owner@family.example"
    )
    ctx = load_context(Host.objects.get(pk=world["vps"].pk))
    staged = tmp_path / "stage"
    Bundle(host="vps", units=(*nginx.units(ctx), *mtasts.units(ctx))).write_to(staged)
    root = staged / "opt/traefik/wkd/public"
    conf = (staged / "opt/traefik/wkd/nginx.conf").read_bytes()
    port = free_port()
    server = for_the_test(conf, root, port, "listen 127.0.0.1:8080", "/usr/share/nginx/html")

    with serving(tmp_path, server, port):
        url = f"http://127.0.0.1:{port}/.well-known/mta-sts.txt"
        with get(url, host="mta-sts.family.example") as response:
            assert response.read() == TESTING
            assert response.headers["Content-Type"].startswith("text/plain")
        for host in ("openpgpkey.family.example", "mta-sts.unknown.example", "family.example"):
            with pytest.raises(HTTPError) as missing:
                get(url, host=host)
            assert missing.value.code == 404, host
        with pytest.raises(HTTPError):
            get(f"http://127.0.0.1:{port}/mta-sts/family.example/mta-sts.txt", host="x.example")


def test_it_refuses_a_mail_host_that_would_break_the_policy():
    settings = ZoneSettings()
    with pytest.raises(Exception, match="control character"):
        mtasts.policy(settings, "mail.family.example\nmx: evil.example")
    assert haproxy.MTA_STS_PREFIX == nginx.MTA_STS_PREFIX == "mta-sts."
