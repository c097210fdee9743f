"""Mailu's own admin (tests/mailu_oracle.py) takes every import document Mailgate renders: its dry
run and its full replace accept it, and ``config-export --full`` shows, field by field, exactly
what Mailgate rendered, Mailu's defaults for the rest, and nothing else. A refused document
changes nothing (one transaction), and the staged check on the host fails with Mailu's reason."""

import dataclasses
import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from certs import deploy
from certs.models import Issuance
from gateway import selectors, services
from gateway.models import Alias, Domain, Mailbox
from gateway.passwords import hash_device_password, hash_password
from gateway.selectors import AliasEntry, DevicePassword, DomainEntry, MailboxEntry
from gateway.writers import lines
from hosts import usage
from hosts.checks import run_check
from hosts.render import mailu, postfix
from lab.ca import LabCA
from tests.mailu_oracle import (  # noqa: F401
    VENV,
    mailu_admin_fixture,
    mailu_admin_process_fixture,
    oracle_core,
    render_mailu,
)
from tests.named import PASSWORD
from tests.render_world import (
    HASH,
    context,
    directory,
    mailu_bundle,
    mailu_world,
    with_directory,
    with_relay,
)
from zones import rspamd
from zones import services as zone_services

# What Mailu holds for every field Mailgate does not render: its defaults. A full import resets
# the user's and domain's own columns to them; what lives in tables of its own (tokens, fetches,
# manager rights, alternative names) it does not (test_a_full_import_keeps_what_hangs_off...).
USER_DEFAULTS = {
    "allow_spoofing": False,
    "change_pw_next_login": False,
    "comment": "",
    "enable_imap": True,
    "enable_pop": True,
    "enabled": True,
    "fetches": [],
    "forward_destination": [],
    "forward_enabled": False,
    "forward_keep": True,
    "global_admin": False,
    "manager_of": [],
    "reply_body": None,
    "reply_enabled": False,
    "reply_enddate": "2999-12-31",
    "reply_startdate": "1900-01-01",
    "reply_subject": None,
    "spam_enabled": True,
    "spam_mark_as_read": True,
    "spam_threshold": 80,
    "tokens": [],
}
DOMAIN_DEFAULTS = {
    "alternatives": [],
    "comment": "",
    "dkim_key": "",
    "max_aliases": -1,
    "max_quota_bytes": 0,
    "max_users": -1,
    "signup_enabled": False,
}
ALIAS_DEFAULTS = {"comment": "", "wildcard": False}


def mailbox(address: str, name: str = "", quota: int = 0) -> MailboxEntry:
    local, domain = address.split("@")
    return MailboxEntry(address, local, domain, name, quota, HASH)


def alias(address: str, *targets: str) -> AliasEntry:
    local, domain = address.split("@")
    return AliasEntry(address if local else f"@{domain}", local, domain, targets, False)


def world_with(**changes):
    """The reference world (tests/render_world.py) on Mailu, its directory changed by ``changes``
    (see with_directory)."""
    world = mailu_world()
    return world, with_directory(context(world, "home"), **changes)


def many_domains():
    domains = (*directory().domains, DomainEntry("empty.example", "mail.example.com"))
    return {"domains": domains}


def every_address_shape():
    """Local parts at Mailgate's limits: 64 characters, dots, dashes, underscores, plus signs."""
    longest = "a" * 64
    return {
        "mailboxes": (
            *directory().mailboxes,
            mailbox(f"{longest}@example.com"),
            mailbox("first.last@example.com", "First Last"),
            mailbox("under_score-dash+tag@example.com"),
        ),
        "aliases": (
            *directory().aliases,
            alias("all@example.com", "john@example.com", "alice@family.example", "x@other.test"),
            alias("@example.com", "john@example.com"),  # a second catch-all, in another domain
        ),
    }


def quotas():
    return {
        "mailboxes": (
            mailbox("john@example.com", "John Doe", 1),
            mailbox("big@example.com", quota=4 * 1024 * 1024),  # 4 TB
            mailbox("alice@family.example"),
        )
    }


def longest_names():
    """The longest display name and domain name Mailu keeps (Mailgate refuses longer ones)."""
    longest = f"{'d' * 63}.{'e' * 8}.example"
    return {
        "domains": (DomainEntry(longest, "mail.example.com"),),
        "mailboxes": (mailbox(f"john@{longest}", "Jöhn " * 32, 2048),),
        "aliases": (),
    }


def international_domain():
    """Mailgate stores a domain in its ASCII form; Mailu shows it in Unicode."""
    return {
        "domains": (DomainEntry("xn--bcher-kva.example", "mail.xn--bcher-kva.example"),),
        "mailboxes": (mailbox("anna@xn--bcher-kva.example", "Anna"),),
        "aliases": (alias("@xn--bcher-kva.example", "anna@xn--bcher-kva.example"),),
    }


WORLDS = {
    "reference": dict,
    "many-domains": many_domains,
    "address-shapes": every_address_shape,
    "quotas": quotas,
    "longest-names": longest_names,
    "international": international_domain,
}


def rendered_document(ctx) -> bytes:
    return mailu_bundle(ctx).file(mailu.IMPORT_PATH).content


def settings_of(ctx) -> dict[str, str]:
    pairs = mailu_bundle(ctx).file(mailu.ENV_PATH).text.splitlines()
    return dict(line.split("=", 1) for line in pairs if not line.startswith("#"))


def ascii_address(address: str) -> str:
    local, _, domain = address.rpartition("@")
    return f"{local}@{ascii_domain(domain)}"


def ascii_domain(name: str) -> str:
    return name.encode("idna").decode()


def by_key(rows: list[dict], key: str) -> dict[str, dict]:
    """Mailu's export by address or name, in the ASCII form Mailgate renders."""
    normal = ascii_domain if key == "name" else ascii_address
    return {normal(row[key]): {**row, key: normal(row[key])} for row in rows}


def comparable(row: dict) -> dict:
    """Mailu keeps an alias's destinations as a set (sorted, without repeats), and gives each
    token it holds an id and an address list of its own."""
    if "destination" in row:
        return {**row, "destination": sorted(set(row["destination"]))}
    if "tokens" in row:
        tokens = sorted((token["comment"], token["password"]) for token in row["tokens"])
        return {**row, "tokens": tokens}
    return row


def assert_mailu_holds(exported: dict, document: dict) -> None:
    """Field by field: every rendered field as rendered, Mailu's default for the rest, and no
    domain, user, alias or relay that Mailgate did not render."""
    sections = [("domain", "name", DOMAIN_DEFAULTS), ("user", "email", USER_DEFAULTS)]
    for section, key, defaults in [*sections, ("alias", "email", ALIAS_DEFAULTS)]:
        held = by_key(exported[section], key)
        expected = {row[key]: {**defaults, **row} for row in document[section]}
        assert sorted(held) == sorted(expected), f"Mailu's {section} list is not Mailgate's"
        for name, row in expected.items():
            assert comparable(held[name]) == comparable(row), f"Mailu holds {name} otherwise"
    assert exported["relay"] == []


def assert_imported(admin, document: bytes) -> None:
    dry_run = admin.dry_run(document)
    assert dry_run.ok, f"Mailu's dry run refused the document: {dry_run.output}"
    applied = admin.apply(document)
    assert applied.ok, f"Mailu refused the document: {applied.output}"
    assert_mailu_holds(admin.export(), yaml.safe_load(document))


@pytest.mark.parametrize("changes", WORLDS.values(), ids=WORLDS.keys())
def test_mailu_holds_exactly_the_directory_mailgate_renders(mailu_admin, changes):
    _, ctx = world_with(**changes())
    assert_imported(mailu_admin(settings_of(ctx)), rendered_document(ctx))


def test_mailu_drops_what_is_disabled_or_deleted_in_mailgate(mailu_admin, family, other):
    """The directory Mailgate's database gives, before and after a mailbox, an alias and a
    whole domain are disabled, and a mailbox deleted: Mailu keeps none of them."""
    Alias.objects.create(domain=family, local_part="team", destinations=["alice@family.example"])
    Alias.objects.create(domain=family, local_part="", destinations=["carol@family.example"])
    world, ctx = world_with()
    admin = mailu_admin(settings_of(ctx))
    assert_imported(admin, rendered_document(context(world, "home", selectors.mail_directory())))

    Mailbox.objects.filter(local_part="carol").update(enabled=False)
    Alias.objects.filter(local_part="team").update(enabled=False)
    Domain.objects.filter(pk=other.pk).update(enabled=False)
    services.mailbox_create(domain=family, local_part="gone", password=PASSWORD).delete()
    after = selectors.mail_directory()
    assert [m.address for m in after.mailboxes] == ["alice@family.example"]
    assert_imported(admin, rendered_document(context(world, "home", after)))


def test_mailu_verifies_the_passwords_mailgate_hashes(mailu_admin, settings):
    """Mailu's import does not look at a hash (see BROKEN below), so its login check is asked:
    the bcrypt hash Mailgate makes, at the rounds it uses in production, opens the mailbox."""
    settings.MAILGATE_BCRYPT_ROUNDS = 12
    john = dataclasses.replace(directory().mailboxes[0], password_hash=hash_password(PASSWORD))
    _, ctx = world_with(mailboxes=(john,))
    admin = mailu_admin(settings_of(ctx))
    assert admin.apply(rendered_document(ctx)).ok
    accepted = admin.accepted_passwords("john@example.com", PASSWORD, "a wrong password")
    assert accepted == [True, False]


def test_a_full_import_replaces_what_was_made_in_mailu(mailu_admin):
    """An admin account, a relayed domain, a domain and a forward made in Mailu (the first steps of
    the Mailu-behind-Traefik guide, docs/reference-setups.md) are gone after Mailgate's import, and
    a user's own settings are reset."""
    _, ctx = world_with()
    admin = mailu_admin(settings_of(ctx))
    made_in_mailu = {
        "domain": [{"name": "example.com", "max_users": 3}, {"name": "old.example"}],
        "user": [
            mailu_user("john@example.com", forward_enabled=True, spam_threshold=30,
                       forward_destination=["elsewhere@other.test"]),
            mailu_user("admin@old.example", global_admin=True),
        ],
        "alias": [{"email": "sales@old.example", "destination": ["admin@old.example"]}],
        "relay": [{"name": "relayed.example", "smtp": "mx.relayed.example"}],
    }  # fmt: skip
    assert admin.apply(json.dumps(made_in_mailu).encode()).ok
    assert_imported(admin, rendered_document(ctx))


def test_a_full_import_keeps_what_hangs_off_a_domain_or_user(mailu_admin):
    """What Mailu keeps through a full import (docs/facts.md §3): it deletes domains and users
    in bulk, and on SQLite their alternative names, tokens, fetched accounts and manager rights
    stay behind and belong again to the domain or user of the same name that the import makes."""
    _, ctx = world_with()
    admin = mailu_admin(settings_of(ctx))
    token = {"password": HASH.removeprefix("{BLF-CRYPT}"), "comment": "made in Mailu"}
    fetch = {"protocol": "imap", "host": "imap.other.test", "port": 993, "username": "john"}
    made_in_mailu = {
        "domain": [{"name": "example.com", "alternatives": ["alt.example"]}],
        "user": [
            mailu_user("john@example.com", manager_of=["example.com"], tokens=[token],
                       fetches=[{**fetch, "password": "fetch-password"}]),
        ],
    }  # fmt: skip
    assert admin.apply(json.dumps(made_in_mailu).encode()).ok
    assert admin.apply(rendered_document(ctx)).ok
    exported = admin.export()
    john = by_key(exported["user"], "email")["john@example.com"]
    assert [held["comment"] for held in john["tokens"]] == ["made in Mailu"]
    assert [held["host"] for held in john["fetches"]] == ["imap.other.test"]
    assert john["manager_of"] == ["example.com"]
    assert by_key(exported["domain"], "name")["example.com"]["alternatives"] == ["alt.example"]


def mailu_user(email: str, **fields) -> dict:
    return {"email": email, "password": HASH.removeprefix("{BLF-CRYPT}"), **fields}


# --- a refused document (one transaction, Mailu's reason) --------------------------------------

# Faults Mailu's import refuses. A password hash is not one: Mailu 2024.06 "checks" a hash by
# verifying the empty password, which User.check_password refuses before looking at the hash, so
# any string passes (see test_mailu_verifies_the_passwords_mailgate_hashes).
BROKEN = {
    "a display name too long": (
        lambda document: document["user"][1].update(displayed_name="J" * 161),
        "user.1.displayed_name : Longer than maximum length 160.",
    ),
    "a domain both served and relayed": (
        lambda document: document.update(relay=[{"name": "family.example", "smtp": "mx.test"}]),
        "Duplicate domain name: ('family.example',)",
    ),
}


def broken_document(ctx, breaks) -> bytes:
    """Mailgate's document with one fault Mailu refuses, after new rows that Mailu would keep
    if the import were not one transaction."""
    document = yaml.safe_load(rendered_document(ctx))
    document["domain"].append({"name": "new.example"})
    document["user"].insert(0, mailu_user("new@new.example"))
    breaks(document)
    return json.dumps(document).encode()


@pytest.mark.parametrize(("breaks", "reason"), BROKEN.values(), ids=BROKEN.keys())
def test_a_refused_document_changes_nothing(mailu_admin, breaks, reason):
    _, ctx = world_with()
    admin = mailu_admin(settings_of(ctx))
    assert admin.apply(rendered_document(ctx)).ok
    broken = broken_document(ctx, breaks)
    for refused in (admin.dry_run(broken), admin.apply(broken)):
        assert not refused.ok
        assert reason in refused.output
    assert_mailu_holds(admin.export(), yaml.safe_load(rendered_document(ctx)))


def docker_running(admin, folder: Path) -> str:
    """A PATH whose ``docker`` has a Compose stack with the admin running: ``compose ... exec -T
    admin CMD`` runs CMD from Mailu's virtualenv against ``admin``'s database, as the container
    would."""
    where, env = admin.command_line()
    exports = "\n".join(f"export {name}={shlex.quote(value)}" for name, value in env.items())
    docker = folder / "docker"
    docker.write_text(
        "#!/bin/bash\n"
        f"{exports}\n"
        '[ "$1 $2" = "compose -f" ] || exit 1\n'
        'case "$4" in\n'
        "  ps) echo admin ;;\n"
        f"  exec) shift 6; cd {shlex.quote(str(where))} && "
        f'exec {shlex.quote(str(VENV))}/bin/"$@" ;;\n'
        "esac\n"
    )
    docker.chmod(0o755)
    return f"{folder}:{os.environ['PATH']}"


def test_the_staged_check_fails_with_mailus_reason_and_changes_nothing(
    mailu_admin, tmp_path, monkeypatch
):
    """On a host whose Mailu runs, the staged check asks Mailu's admin for a dry run: a document
    it refuses fails the deployment before anything is activated, with Mailu's message."""
    _, ctx = world_with()
    admin = mailu_admin(settings_of(ctx))
    assert admin.apply(rendered_document(ctx)).ok
    bundle = mailu_bundle(ctx)
    stage = tmp_path / "stage"
    bundle.write_to(stage)
    check = bundle.unit("mailu").checks[1]
    monkeypatch.setenv("PATH", docker_running(admin, tmp_path))
    assert run_check("mailu", check, stage).ok

    breaks, reason = BROKEN["a display name too long"]
    (stage / mailu.IMPORT_PATH.lstrip("/")).write_bytes(broken_document(ctx, breaks))
    result = run_check("mailu", check, stage)
    assert not result.ok
    assert reason in result.output
    assert_mailu_holds(admin.export(), yaml.safe_load(rendered_document(ctx)))


# --- mailu.env through Mailu's own templates, checked by the real tools -------------------------


def ipv6_gateway_two_names(world):
    world["vps"].public_ipv6 = "2001:db8::1"
    world["home"].fqdn = "home.example.net"
    return world


ENV_WORLDS = {
    "reference": lambda world: world,
    "relay-with-password": with_relay,
    "relay-host-on-the-lan": lambda world: with_relay(
        world, port=25, username="", password="", tls_level="may"
    ),
    "ipv6-gateway-two-names": ipv6_gateway_two_names,
}


@pytest.fixture(params=ENV_WORLDS.values(), ids=ENV_WORLDS.keys())
def mailu_env(request) -> dict[str, str]:
    """The settings of the mailu.env Mailgate writes for one world."""
    world, _ = world_with()
    return settings_of(context(request.param(world), "home"))


def test_mailus_postfix_takes_the_settings_and_passes_postfix_check(mailu_env, tmp_path):
    """Mailu's main.cf and master.cf pass the Postfix renderer's own offline check (postconf
    without a warning, postfix check), staged where that check reads them."""
    out = render_mailu("postfix", mailu_env, tmp_path / "out")
    stage = tmp_path / "stage"
    shutil.copytree(out / "postfix", stage / "etc" / "postfix")
    result = run_check("mailu-postfix", postfix._check_script([], []), stage)
    assert result.ok, result.output
    main_cf = (out / "postfix" / "main.cf").read_text().splitlines()
    hostname = mailu_env["HOSTNAMES"].split(",")[0]
    assert f"myhostname = {hostname}" in main_cf
    assert f"relayhost = {mailu_env.get('RELAYHOST', '')}".strip() in map(str.strip, main_cf)
    level = mailu_env.get("OUTBOUND_TLS_LEVEL", "dane")
    assert f"smtp_tls_security_level = {level}" in main_cf
    assert f"mynetworks = 127.0.0.1/32 {mailu_env['SUBNET']}" in map(str.strip, main_cf)
    if "RELAYUSER" in mailu_env:
        sasl = (out / "postfix" / "sasl_passwd").read_text()
        credentials = f"{mailu_env['RELAYUSER']}:{mailu_env['RELAYPASSWORD']}"
        assert f"{mailu_env['RELAYHOST']} {credentials}" in sasl


def test_mailus_dovecot_takes_the_settings_and_passes_doveconf(mailu_env, tmp_path):
    out = render_mailu("dovecot", mailu_env, tmp_path / "out")
    parsed = doveconf(out / "dovecot" / "dovecot.conf")
    assert f"hostname = {mailu_env['HOSTNAMES'].split(',')[0]}" in parsed
    assert f"login_trusted_networks = {mailu_env['SUBNET']}" in parsed


def test_mailus_front_trusts_the_gateways_proxy_headers_and_passes_its_tools(mailu_env, tmp_path):
    """Mailu's front is nginx (HTTP and SMTP on 25) and a Dovecot proxy (IMAP, POP3, submission,
    sieve): each believes the PROXY header on the ports in PROXY_PROTOCOL, from REAL_IP_FROM
    only, and passes ``nginx -t`` and ``doveconf -n``."""
    out = render_mailu("nginx", mailu_env, tmp_path / "out", RESOLVER="127.0.0.1")
    result = nginx_test(out / "nginx", tmp_path / "front", mailu_env["HOSTNAMES"])
    assert result.returncode == 0, result.stderr
    assert "ssl_certificate /certs/cert.pem;" in (out / "nginx" / "tls.conf").read_text()
    assert "ssl_certificate_key /certs/key.pem;" in (out / "nginx" / "tls.conf").read_text()
    nginx_conf = (out / "nginx" / "nginx.conf").read_text()
    proxies = mailu_env["REAL_IP_FROM"].split(",")
    assert all(f"set_real_ip_from {address};" in nginx_conf for address in proxies)
    assert "listen 25 proxy_protocol;" in nginx_conf
    assert "listen 443 ssl proxy_protocol;" in nginx_conf

    parsed = doveconf(out / "front-dovecot" / "proxy.conf")
    front_dovecot = (out / "front-dovecot" / "proxy.conf").read_text()
    assert "ssl_cert = </certs/cert.pem" in parsed and "ssl_key = </certs/key.pem" in front_dovecot
    assert f"haproxy_trusted_networks = {' '.join(proxies)}" in parsed
    listeners = re.findall(r"inet_listener \S+ \{\n(.*?)\n  \}", parsed, re.DOTALL)
    by_port = {re.search(r"port = (\d+)", body).group(1): body for body in listeners}
    for port in ("465", "587", "993", "995", "4190"):
        assert "haproxy = yes" in by_port[port], f"no PROXY header expected on {port}"


def test_mailus_rspamd_takes_the_settings_and_passes_rspamadm_configtest(mailu_env, tmp_path):
    out = render_mailu("rspamd", mailu_env, tmp_path / "out")
    result = rspamd_configtest(out / "rspamd" / "local.d", tmp_path / "rspamd", overrides={})
    assert result.returncode == 0, result.stdout + result.stderr
    options = (out / "rspamd" / "local.d" / "options.inc").read_text()
    assert f"local_networks = [{mailu_env['SUBNET']}];" in options


def test_mailus_rspamd_takes_mailgates_signing_override(family, other, tmp_path):
    """Mailgate's DKIM override (zones.rspamd), where Mailu's dkim_signing.conf includes it:
    rspamadm configtest passes, and fails on a broken one."""
    _, ctx = world_with()
    keys = [zone_services.dkim_key_generate(domain=domain) for domain in (family, other)]
    out = render_mailu("rspamd", settings_of(ctx), tmp_path / "out")
    local = out / "rspamd" / "local.d"
    override = {"dkim_signing.conf": lines(rspamd.override(keys))}
    result = rspamd_configtest(local, tmp_path / "good", overrides=override)
    assert result.returncode == 0, result.stdout + result.stderr
    content = override["dkim_signing.conf"]
    broken = {"dkim_signing.conf": content[: content.rindex(b"}")]}  # a brace left open
    result = rspamd_configtest(local, tmp_path / "broken", overrides=broken)
    assert result.returncode != 0
    assert "dkim_signing.conf" in result.stdout + result.stderr


def doveconf(path: Path) -> str:
    result = subprocess.run(
        ["doveconf", "-n", "-c", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and not result.stderr, result.stderr
    return result.stdout


# What the checks change in Mailu's files, and why: the containers' paths do not exist here.
def front_paths(folder: Path) -> list[tuple[str, str]]:
    """nginx.conf names the files start.py wrote (/etc/nginx), the certificates of the certs
    volume, Mailu's dhparam (/conf) and the overrides volume; the user is Debian's; Alpine's
    CA bundle names ISRG Root X1 otherwise; and Debian 12's nginx 1.22 predates ``http2 on;``
    (1.25.1), the one directive of Mailu's that it cannot read (HTTP/2 is no matter here)."""
    return [
        ("/etc/nginx/tls.conf", f"{folder}/tls.conf"),
        ("/etc/nginx/proxy.conf", f"{folder}/proxy.conf"),
        ("/etc/nginx/conf.d/", f"{folder}/conf.d/"),
        (" /certs/", f" {folder}/certs/"),
        ("/conf/dhparam.pem", str(oracle_core() / "nginx" / "conf" / "dhparam.pem")),
        ("/overrides/", f"{folder}/overrides/"),
        ("user nginx;", "user www-data;"),
        ("http2 on;", ""),
        ("/etc/ssl/certs/ca-cert-ISRG_Root_X1.pem", "/etc/ssl/certs/ISRG_Root_X1.pem"),
    ]


def nginx_test(rendered: Path, folder: Path, hostnames: str) -> subprocess.CompletedProcess:
    """``nginx -t`` on Mailu's front configuration, with the certificate files Mailgate deploys
    (``certs.deploy``) in its certs volume, for every name of HOSTNAMES."""
    for name in ("conf.d", "overrides"):
        (folder / name).mkdir(parents=True)
    issued = LabCA().issue(*hostnames.split(","))
    issuance = Issuance(fullchain=issued.fullchain.decode(), private_key=issued.privkey.decode())
    for file in deploy._mailu_files(issuance):
        target = folder / "certs" / Path(file.path).relative_to(mailu.CERTS)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file.content)
    for path in rendered.iterdir():
        text = path.read_text()
        for old, new in front_paths(folder):
            text = text.replace(old, new)
        (folder / path.name).write_text(text)
    return subprocess.run(
        ["nginx", "-t", "-c", str(folder / "nginx.conf")],
        capture_output=True,
        text=True,
        check=False,
    )


def rspamd_configtest(
    local: Path, folder: Path, overrides: dict[str, bytes]
) -> subprocess.CompletedProcess:
    """``rspamadm configtest`` on Debian's stock rspamd configuration with Mailu's local.d, and
    ``overrides`` where Mailu's files include them (its /overrides volume). rspamd's stock
    fuzzy_check names rspamd.com's public servers, which it resolves while loading: the copy
    names loopback, as nothing here resolves public names. Not strict: Mailu's force_actions
    name antivirus symbols that exist only with ANTIVIRUS=clamav, which rspamd reports and
    Mailu's own rspamd lives with."""
    shutil.copytree("/etc/rspamd", folder / "rspamd", ignore=shutil.ignore_patterns("local.d"))
    fuzzy = folder / "rspamd" / "modules.d" / "fuzzy_check.conf"
    fuzzy.write_text(re.sub(r"fuzzy\d\.rspamd\.com", "127.0.0.1", fuzzy.read_text()))
    (folder / "overrides").mkdir()
    for name, content in overrides.items():
        (folder / "overrides" / name).write_bytes(content)
    shutil.copytree(local, folder / "rspamd" / "local.d")
    for path in (folder / "rspamd" / "local.d").iterdir():
        path.write_text(path.read_text().replace('"/overrides/', f'"{folder}/overrides/'))
    confdir = str(folder / "rspamd")
    return subprocess.run(
        [
            *("rspamadm", f"--var=CONFDIR={confdir}", f"--var=LOCAL_CONFDIR={confdir}"),
            *("configtest", "-c", f"{confdir}/rspamd.conf"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


# --- a mailbox's own settings (docs/mailbox-features.md, Mailu): every field, kept as rendered -

DEVICE_PASSWORDS = ("0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210")


def mailbox_settings():
    """Every setting Mailgate models, away from Mailu's defaults, and device passwords."""
    john = dataclasses.replace(
        directory().mailboxes[0],
        forward_to=("x@other.test", "alice@family.example"),
        forward_keep_copy=False,
        autoreply_enabled=True,
        autoreply_subject='Away: "the cat" \\ ${x}',
        autoreply_body="Back on Monday.\n\nJohn",
        autoreply_start=datetime.date(2026, 12, 24),
        autoreply_end=datetime.date(2027, 1, 2),
        spam_enabled=False,
        spam_threshold=55,
        imap_enabled=False,
        pop3_enabled=False,
        app_passwords=tuple(
            DevicePassword(pk, hash_device_password(p))
            for pk, p in enumerate(DEVICE_PASSWORDS, start=1)
        ),
    )
    return {"mailboxes": (john, *directory().mailboxes[1:])}


WORLDS["mailbox-settings"] = mailbox_settings


def run_import_script(admin, document: bytes, *arguments: str) -> subprocess.CompletedProcess:
    """Mailgate's import script (scripts/mailu-import.py) as the activation runs it: with
    Mailu's Python in its admin folder, the document on stdin."""
    where, env = admin.command_line()
    script = (Path(mailu.__file__).parent / "scripts" / "mailu-import.py").read_text()
    return subprocess.run(
        [str(VENV / "bin" / "python3"), "-c", script, *arguments],
        input=document,
        cwd=where,
        env=env,
        capture_output=True,
        check=False,
    )


def test_the_import_script_replaces_tokens_so_a_revoked_device_password_stops(mailu_admin):
    """Mailu's own import adds a document's tokens beside the ones it holds and removes none:
    twice the same document makes two tokens, and a token gone from it still logs in. The
    script makes Mailu hold exactly the device passwords Mailgate renders."""
    _, ctx = world_with(**mailbox_settings())
    admin = mailu_admin(settings_of(ctx))
    document = rendered_document(ctx)
    for _ in range(2):
        done = run_import_script(admin, document)
        assert done.returncode == 0, done.stderr
    john = by_key(admin.export()["user"], "email")["john@example.com"]
    assert len(john["tokens"]) == 2
    first, second = DEVICE_PASSWORDS
    assert admin.accepted_logins("john@example.com", "smtp", first, second, "0" * 32) == [
        True,
        True,
        False,
    ]
    assert admin.accepted_logins("john@example.com", "imap", first) == [False]  # IMAP is off

    john_box = mailbox_settings()["mailboxes"][0]
    revoked = dataclasses.replace(john_box, app_passwords=john_box.app_passwords[1:])
    after = with_directory(ctx, mailboxes=(revoked, *directory().mailboxes[1:]))
    assert run_import_script(admin, rendered_document(after)).returncode == 0
    assert admin.accepted_logins("john@example.com", "smtp", first, second) == [False, True]


def test_the_import_script_keeps_what_mailgate_does_not_model(mailu_admin):
    """Set in Mailu before Mailgate took over: kept, where the plain full import resets it."""
    _, ctx = world_with()
    admin = mailu_admin(settings_of(ctx))
    made_in_mailu = {
        "domain": [{"name": "example.com", "max_users": 3, "comment": "ours"}],
        "user": [
            mailu_user("john@example.com", allow_spoofing=True, spam_mark_as_read=False,
                       comment="John's", spam_threshold=30),
        ],
        "alias": [{"email": "postmaster@example.com", "destination": ["john@example.com"],
                   "comment": "RFC 2142"}],
    }  # fmt: skip
    assert admin.apply(json.dumps(made_in_mailu).encode()).ok
    document = rendered_document(ctx)
    dry = run_import_script(admin, document, "-n")
    assert dry.returncode == 0, dry.stderr
    assert by_key(admin.export()["user"], "email").keys() == {"john@example.com"}  # unchanged
    done = run_import_script(admin, document)
    assert done.returncode == 0, done.stderr
    exported = admin.export()
    john = by_key(exported["user"], "email")["john@example.com"]
    kept = {"allow_spoofing": True, "spam_mark_as_read": False, "comment": "John's"}
    assert {key: john[key] for key in kept} == kept
    assert john["spam_threshold"] == 80  # modeled: Mailgate's value
    domain = by_key(exported["domain"], "name")["example.com"]
    assert (domain["max_users"], domain["comment"]) == (3, "ours")
    alias = by_key(exported["alias"], "email")["postmaster@example.com"]
    assert alias["comment"] == "RFC 2142"
    # Everything Mailgate renders is Mailu's now, the kept fields aside.
    rendered = yaml.safe_load(document)
    # Mailgate's empty auto-reply text stays Mailu's NULL for a user Mailu had (never set).
    never_set = {"reply_subject": None, "reply_body": None}
    for row in rendered["user"]:
        row.update({**kept, **never_set} if row["email"] == "john@example.com" else {})
    rendered["domain"][0].update(max_users=3, comment="ours")
    rendered["alias"][0].update(comment="RFC 2142")
    assert_mailu_holds(exported, rendered)


def test_the_import_script_changes_nothing_when_mailu_refuses(mailu_admin):
    """Tokens deleted, then a refused document: the tokens are back, as is everything else.
    (Broken is a user without tokens: for one with tokens Mailu fails on the tokens first.)"""
    _, ctx = world_with(**mailbox_settings())
    admin = mailu_admin(settings_of(ctx))
    assert run_import_script(admin, rendered_document(ctx)).returncode == 0

    def breaks(document):
        document["user"][2].update(displayed_name="J" * 161)

    reason = "user.2.displayed_name : Longer than maximum length 160."
    refused = run_import_script(admin, broken_document(ctx, breaks))
    assert refused.returncode != 0
    assert reason in refused.stderr.decode() + refused.stdout.decode()
    assert_mailu_holds(admin.export(), yaml.safe_load(rendered_document(ctx)))


def test_mailus_count_of_storage_in_use_is_read_as_mailgate_asks(mailu_admin, tmp_path):
    """hosts.usage's command for Mailu, through ``docker compose exec admin``: every user."""
    _, ctx = world_with()
    admin = mailu_admin(settings_of(ctx))
    assert admin.apply(rendered_document(ctx)).ok
    path = docker_running(admin, tmp_path)
    result = subprocess.run(
        ["sh", "-c", usage.MAILU], capture_output=True, text=True, env={**os.environ, "PATH": path}
    )
    assert result.returncode == 0, result.stderr
    assert usage.parse_mailu(result.stdout) == {box.address: 0 for box in ctx.directory.mailboxes}
