"""Postfix + Dovecot on the home server and Postfix relaying through the Proton Bridge: the files
match the ISPmail and Proton Bridge guides (docs/reference-setups.md), pass the real tools, and the
tools really catch mistakes."""

import base64
import datetime
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.exceptions import ValidationError

from gateway.bundle import Bundle, RenderError
from gateway.selectors import DomainEntry
from hosts.checks import run_check, run_checks
from hosts.render import bridge, dovecot, postfix, render, tls
from hosts.render import context as context_module
from lab.ca import LabCA
from tests.render_world import assert_golden, context, hosts, with_directory

# render() also asks the other apps' bundle contributors, which read the database (DKIM keys).
pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    return hosts()


def staged(tmp_path, ctx):
    bundle = render(ctx)
    bundle.write_to(tmp_path)
    return bundle


def postmap_query(tmp_path, path: str, key: str) -> str:
    copy = tmp_path / "query" / path.rsplit("/", 1)[1]
    copy.parent.mkdir(exist_ok=True)
    copy.write_bytes((tmp_path / path.lstrip("/")).read_bytes())
    subprocess.run(["postmap", f"hash:{copy}"], check=True)
    result = subprocess.run(["postmap", "-q", key, f"hash:{copy}"], capture_output=True, text=True)
    return result.stdout.strip()


@pytest.mark.parametrize(
    "path",
    [
        "/etc/postfix/main.cf",
        "/etc/postfix/master.cf",
        "/etc/postfix/mailgate/virtual_domains",
        "/etc/postfix/mailgate/virtual_mailboxes",
        "/etc/postfix/mailgate/virtual_aliases",
        "/etc/postfix/mailgate/sender_logins",
        "/etc/dovecot/dovecot.conf",
        "/etc/dovecot/mailgate-users",
    ],
)
def test_it_renders_the_mail_server_as_reviewed(world, path):
    bundle = render(context(world, "home"))
    assert_golden(bundle.file(path).content, f"mailserver{path}")


@pytest.mark.parametrize(
    "path",
    [
        "/etc/postfix/main.cf",
        "/etc/postfix/master.cf",
        "/etc/postfix/mailgate/sasl_passwd",
        "/etc/postfix/mailgate/sender_canonical",
        "/etc/systemd/system/protonmail-bridge.service",
    ],
)
def test_it_renders_the_proton_relay_as_reviewed(world, path):
    bundle = render(context(world, "relay"))
    assert_golden(bundle.file(path).content, f"relay{path}")


def test_it_renders_the_same_bytes_every_time(world):
    for name in ("home", "relay"):
        first, second = render(context(world, name)), render(context(world, name))
        assert [(f.path, f.content) for f in first.files] == [
            (f.path, f.content) for f in second.files
        ]


def test_it_says_every_text_file_is_managed_by_mailgate(world):
    for name in ("home", "relay"):
        for file in render(context(world, name)).files:
            head = file.content.splitlines()[:2]  # a script's shebang comes first
            assert any(line.startswith(b"# Managed by Mailgate.") for line in head), file.path


@pytest.mark.parametrize("name", ["home", "relay"])
def test_it_passes_postfix_check_postconf_postmap_and_doveconf(world, tmp_path, name):
    results = run_checks(staged(tmp_path, context(world, name)), tmp_path)
    assert results, "the bundle has checks"
    for result in results:
        assert result.ok, result.output


def test_it_fails_the_check_on_a_misspelled_parameter(world, tmp_path):
    bundle = staged(tmp_path, context(world, "home"))
    main_cf = tmp_path / "etc/postfix/main.cf"
    main_cf.write_text(main_cf.read_text() + "smtpd_tls_auth_onyl = yes\n")
    result = run_check("postfix", bundle.unit("postfix").checks[0], tmp_path)
    assert not result.ok
    assert "smtpd_tls_auth_onyl" in result.output


def test_it_fails_the_check_on_a_malformed_master_cf(world, tmp_path):
    bundle = staged(tmp_path, context(world, "home"))
    master_cf = tmp_path / "etc/postfix/master.cf"
    master_cf.write_text(master_cf.read_text() + "broken inet n -\n")
    result = run_check("postfix", bundle.unit("postfix").checks[0], tmp_path)
    assert not result.ok
    assert "bad field count" in result.output


def test_it_fails_the_check_on_a_broken_dovecot_conf(world, tmp_path):
    bundle = staged(tmp_path, context(world, "home"))
    conf = tmp_path / "etc/dovecot/dovecot.conf"
    conf.write_text(conf.read_text() + "service imap-login {\n")
    result = run_check("dovecot", bundle.unit("dovecot").checks[0], tmp_path)
    assert not result.ok


def test_it_keys_the_relay_password_as_postfix_looks_it_up(world, tmp_path):
    staged(tmp_path, context(world, "relay"))
    sasl = "/etc/postfix/mailgate/sasl_passwd"
    assert postmap_query(tmp_path, sasl, "[127.0.0.1]:1025") == (
        "joe@proton.me:wzRrv5R6xOREfmcQ12837ASUDFiudfhsai"
    )
    assert postmap_query(tmp_path, sasl, "127.0.0.1:1025") == ""
    secret = render(context(world, "relay")).file(sasl)
    assert secret.mode == 0o600 and secret.secret


def test_it_lets_mailboxes_send_as_themselves_and_as_aliases_marked_as_senders(world, tmp_path):
    staged(tmp_path, context(world, "home"))
    logins = "/etc/postfix/mailgate/sender_logins"
    assert postmap_query(tmp_path, logins, "alice@family.example") == "alice@family.example"
    assert postmap_query(tmp_path, logins, "team@family.example") == (
        "alice@family.example,carol@family.example"
    )
    assert postmap_query(tmp_path, logins, "postmaster@example.com") == ""  # not a sender
    assert postmap_query(tmp_path, logins, "uncle@family.example") == ""


def test_it_keeps_mailboxes_reachable_beside_a_catch_all(world, tmp_path):
    staged(tmp_path, context(world, "home"))
    aliases = "/etc/postfix/mailgate/virtual_aliases"
    assert postmap_query(tmp_path, aliases, "carol@family.example") == "carol@family.example"
    assert postmap_query(tmp_path, aliases, "@family.example") == "alice@family.example"
    assert postmap_query(tmp_path, aliases, "john@example.com") == ""  # no catch-all there


def test_it_never_renders_an_open_relay(world):
    for name in ("home", "relay"):
        settings = dict(postfix.main_cf(context(world, name), mailserver=name == "home"))
        restrictions = settings["smtpd_relay_restrictions"].split(", ")
        assert restrictions[-1] == "reject_unauth_destination"
        assert set(restrictions[:-1]) == {"permit_mynetworks", "permit_sasl_authenticated"}
    assert dict(postfix.main_cf(context(world, "relay"), mailserver=False))["mynetworks"] == (
        "127.0.0.0/8 [::1]/128 192.168.1.0/24"
    )
    master = postfix.master_cf(context(world, "home"), mailserver=True)
    assert master.count("  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject") == 2


def services_of(master: list[str]) -> dict[str, list[str]]:
    """master.cf as {service line: its -o options}."""
    services: dict[str, list[str]] = {}
    last = ""
    for line in master:
        if line.startswith("  -o "):
            services[last].append(line.removeprefix("  -o "))
        elif line and not line.startswith("#"):
            last = line
            services[last] = []
    return services


def test_only_the_tunnel_address_reads_a_proxy_header_and_no_claimed_address_is_trusted(world):
    services = services_of(postfix.master_cf(context(world, "home"), mailserver=True))
    inet = {line: options for line, options in services.items() if " inet " in line}
    proxied = {line: o for line, o in inet.items() if "smtpd_upstream_proxy_protocol=haproxy" in o}
    assert sorted(line.split()[0] for line in proxied) == [
        "10.0.1.2:smtp",
        "10.0.1.2:submission",
        "10.0.1.2:submissions",
    ]
    # Whatever a header claims (loopback, a LAN), permit_mynetworks matches nothing there.
    assert all("mynetworks=" in options for options in proxied.values())
    # Inbound mail never reaches the signing milter: a forged header cannot get a signature.
    assert "smtpd_milters=" in proxied["10.0.1.2:smtp inet n - y - - smtpd"]
    # The one other listener is loopback, without a header: programs on the host itself.
    assert set(inet) - set(proxied) == {"127.0.0.1:smtp inet n - y - - smtpd"}
    settings = dict(postfix.main_cf(context(world, "home"), mailserver=True))
    assert settings["inet_interfaces"] == "loopback-only"
    assert settings["mynetworks"] == "127.0.0.0/8 [::1]/128"
    assert "listen = 10.0.1.2" in dovecot.dovecot_conf(context(world, "home"))


def test_an_ipv6_tunnel_address_is_bracketed_as_master_cf_reads_hosts(world):
    world["home"].tunnel_address = "fd00:8::2"
    master = postfix.master_cf(context(world, "home"), mailserver=True)
    assert "[fd00:8::2]:submission inet n - y - - smtpd" in master


def test_a_mail_server_outside_a_tunnel_is_refused_not_opened(world):
    world["peer"].host = world["relay"]
    with pytest.raises(RenderError, match="spoke of a tunnel"):
        postfix.master_cf(context(world, "home"), mailserver=True)


def test_a_mail_server_refuses_lan_networks_a_header_could_claim(world):
    home = world["home"]
    home.lan_networks = ["192.168.1.0/24"]
    with pytest.raises(ValidationError) as refused:
        home.clean()
    assert "trusts no network" in str(refused.value.message_dict["lan_networks"])
    with pytest.raises(RenderError, match="trusts no network"):  # a row saved before the rule
        render(context(world, "home"))
    home.mail_backend = "mailu"  # Mailu judges headers by its own REAL_IP_FROM
    home.clean()


def test_submission_and_imaps_get_mozilla_intermediate_and_port_25_no_anonymous_suite(world):
    ctx = context(world, "home")
    settings = dict(postfix.main_cf(ctx, mailserver=True))
    assert settings["smtpd_tls_mandatory_protocols"] == ">=TLSv1.2"
    assert settings["smtpd_tls_mandatory_ciphers"] == "high"
    assert settings["tls_high_cipherlist"] == tls.INTERMEDIATE_CIPHERS
    assert "aNULL" in settings["smtpd_tls_exclude_ciphers"]  # every level, port 25 too
    services = services_of(postfix.master_cf(ctx, mailserver=True))
    for service in ("submission", "submissions"):
        options = services[f"10.0.1.2:{service} inet n - y - - smtpd"]
        assert "smtpd_tls_security_level=encrypt" in options  # so the mandatory settings apply
    conf = dovecot.dovecot_conf(ctx)
    assert f"ssl_cipher_list = {tls.INTERMEDIATE_CIPHERS}" in conf
    assert "ssl_min_protocol = TLSv1.2" in conf
    # Every suite named is forward-secret AEAD: no CBC, no RSA key exchange.
    assert all(
        suite.startswith(("ECDHE-", "DHE-")) and ("GCM" in suite or "CHACHA20" in suite)
        for suite in tls.INTERMEDIATE_CIPHERS.split(":")
    )
    listed = subprocess.run(
        ["openssl", "ciphers", tls.INTERMEDIATE_CIPHERS], capture_output=True, text=True
    )
    known = set(listed.stdout.strip().split(":"))  # OpenSSL knows every name
    assert listed.returncode == 0 and set(tls.INTERMEDIATE_CIPHERS.split(":")) <= known


def test_it_pins_a_pasted_smarthost_certificate_by_fingerprint(world):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "127.0.0.1")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.datetime(2026, 1, 1))
        .not_valid_after(datetime.datetime(2036, 1, 1))
        .sign(key, hashes.SHA256())
    )
    relay = world["relay"].relay
    relay.tls_certificate = certificate.public_bytes(serialization.Encoding.PEM).decode()
    relay.tls_level = "secure"
    settings = dict(postfix.main_cf(context(world, "relay"), mailserver=False))
    assert settings["smtp_tls_security_level"] == "fingerprint"
    expected = certificate.fingerprint(hashes.SHA256()).hex(":").upper()
    assert settings["smtp_tls_fingerprint_cert_match"] == expected


def test_it_tells_the_person_the_bridge_login_steps(world):
    unit = render(context(world, "relay")).unit("protonmail-bridge")
    assert "pass init 'ProtonMail Bridge'" in unit.instructions
    assert "--quick-gen-key 'ProtonMail Bridge'" in unit.instructions
    assert "protonmail-bridge --cli" in unit.instructions


def test_it_runs_no_bridge_for_a_provider_smarthost(world):
    relay = world["relay"].relay
    relay.kind, relay.host, relay.port = "generic", "smtp.provider.example", 587
    assert bridge.units(context(world, "relay")) == []
    settings = dict(postfix.main_cf(context(world, "relay"), mailserver=False))
    assert settings["relayhost"] == "[smtp.provider.example]:587"


def test_it_limits_quota_and_locks_mailboxes_without_a_password(world):
    ctx = context(world, "home")
    box = ctx.directory.mailboxes[0]
    ctx = with_directory(ctx, mailboxes=(box.__class__(**{**box.__dict__, "password_hash": ""}),))
    assert dovecot.users(ctx) == ["john@example.com:*::::::userdb_quota_rule=*:storage=2048M"]


def test_it_trusts_only_the_gateway_for_proxy_headers(world):
    conf = dovecot.dovecot_conf(context(world, "home"))
    assert "haproxy_trusted_networks = 10.0.1.1" in conf
    world["peer"].host = world["relay"]  # home is no longer a spoke
    with pytest.raises(RenderError, match="spoke of a tunnel"):
        dovecot.dovecot_conf(context(world, "home"))


@pytest.mark.parametrize("char", ["\n", "\r", "\x00"])
def test_it_refuses_a_control_character_that_slipped_past_validation(world, char):
    world["relay"].relay.password = f"secret{char}relayhost = [evil.example]"
    with pytest.raises(RenderError, match="control character"):
        render(context(world, "relay"))
    ctx = context(world, "home")
    alias = ctx.directory.aliases[0]
    poisoned = alias.__class__(**{**alias.__dict__, "destinations": (f"a@b.example{char}x",)})
    with pytest.raises(RenderError, match="control character"):
        render(with_directory(ctx, aliases=(poisoned,)))


def test_it_refuses_a_relay_host_without_a_smarthost(world):
    world["relay"].relay = None
    with pytest.raises(RenderError, match="no smarthost"):
        render(context(world, "relay"))


def test_it_puts_nothing_on_a_host_without_a_postfix_role(world):
    assert postfix.units(context(world, "vps")) == []
    assert dovecot.units(context(world, "vps")) == []
    assert Bundle(host="vps").files == []


def test_postmaster_and_root_reach_a_person_on_every_domain_and_the_host(world, tmp_path):
    """RFC 5321 4.5.1: postmaster@ of every domain reaches a mailbox, and so do root and
    postmaster of the host itself (cron, bounces), instead of looping to the gateway."""
    staged(tmp_path, context(world, "home"))
    aliases = "/etc/postfix/mailgate/virtual_aliases"
    assert postmap_query(tmp_path, aliases, "postmaster@family.example") == "alice@family.example"
    assert postmap_query(tmp_path, aliases, "postmaster@example.com") == "john@example.com"  # own
    for local in ("root", "postmaster"):
        for host in ("mail.example.com", "localhost"):
            target = postmap_query(tmp_path, aliases, f"{local}@{host}")
            assert target == "postmaster@example.com", (local, host)


def test_a_mailbox_named_postmaster_or_root_is_never_shadowed(world):
    ctx = context(world, "home")
    box = ctx.directory.mailboxes[0]
    own = box.__class__(**{**box.__dict__, "address": "postmaster@family.example"})
    rows = dict(
        postfix.maps(with_directory(ctx, mailboxes=(*ctx.directory.mailboxes, own)))[
            "virtual_aliases"
        ]
    )
    assert "postmaster@family.example" not in rows


def test_mail_leaves_over_ipv4_only_when_it_goes_through_the_gateway(world):
    assert dict(postfix.main_cf(context(world, "home"), mailserver=True))["inet_protocols"] == (
        "ipv4"
    )
    world["peer"].egress_via_hub = False  # the home line sends itself: IPv6 is its own
    assert dict(postfix.main_cf(context(world, "home"), mailserver=True))["inet_protocols"] == (
        "all"
    )


def two_names(world):
    """example.com on mail.example.com (the host's own name), family.example on its own."""
    ctx = context(world, "home")
    domains = (
        DomainEntry("example.com", "mail.example.com"),
        DomainEntry("family.example", "mail.family.example"),
    )
    return with_directory(ctx, domains=domains)


def test_each_mail_host_name_presents_its_own_certificate(world, tmp_path, monkeypatch):
    """Several mail host names (each an MX that MTA-STS names): Postfix picks the certificate by
    the TLS server name (tls_server_sni_maps, built with postmap -F), Dovecot by local_name;
    the staged checks pass with the real tools once the certificates are there."""
    live = tmp_path / "live"
    monkeypatch.setattr(context_module, "CERTBOT_LIVE", str(live))
    ctx = two_names(world)
    settings = dict(postfix.main_cf(ctx, mailserver=True))
    assert settings["tls_server_sni_maps"] == f"hash:{postfix.SNI_MAP}"
    assert settings["smtpd_tls_cert_file"] == f"{live}/mail.example.com/fullchain.pem"
    conf = dovecot.dovecot_conf(ctx)
    block = conf.index("local_name mail.family.example {")
    assert conf[block + 1] == f"  ssl_cert = <{live}/mail.family.example/fullchain.pem"
    stage = tmp_path / "stage"
    bundle = staged(stage, ctx)
    failed = run_check("postfix", bundle.unit("postfix").checks[0], stage)
    assert not failed.ok and "The certificate for mail.family.example is missing" in failed.output
    issued = LabCA().issue("mail.family.example")
    (live / "mail.family.example").mkdir(parents=True)
    (live / "mail.family.example/fullchain.pem").write_bytes(issued.fullchain)
    (live / "mail.family.example/privkey.pem").write_bytes(issued.privkey)
    for unit in ("postfix", "dovecot"):
        result = run_check(unit, bundle.unit(unit).checks[0], stage)
        assert result.ok, result.output
    sni = stage / postfix.SNI_MAP.lstrip("/")
    subprocess.run(["postmap", "-F", f"hash:{sni}"], check=True)
    found = subprocess.run(
        ["postmap", "-q", "mail.family.example", f"hash:{sni}"], capture_output=True, text=True
    ).stdout
    assert base64.b64decode(found.strip()).startswith(b"-----BEGIN")  # the files' contents


def test_one_named_certificate_serves_every_name(world):
    world["home"].tls_certificate_path = "/etc/ssl/mail/all-names.pem"
    world["home"].tls_key_path = "/etc/ssl/mail/all-names.key"
    ctx = two_names(world)
    assert "tls_server_sni_maps" not in dict(postfix.main_cf(ctx, mailserver=True))
    assert not any(line.startswith("local_name") for line in dovecot.dovecot_conf(ctx))
