"""Adopting a Postfix + Dovecot home server and its gateway built by hand (docs/adoption.md): a copy
of their /etc, the tables made with the real ``postmap`` (hash and lmdb), Dovecot's passwd-file
users, WireGuard's wg0.conf on both ends and HAProxy's file. The tunnel keeps its keys; every
domain, mailbox (with its hash and quota), alias (the catch-all, one allowed as a sender) and the
relay with its password come in; the password is encrypted at rest; every address routes where
it routed before (``postmap -q`` on the old tables and on Mailgate's), and where it would not, the
report says so. A line Mailgate cannot express is refused with its line, and nothing is written."""

import subprocess
from pathlib import Path

import pytest
from auditlog.models import LogEntry
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from gateway.models import Alias, Domain, Mailbox
from hosts import wireguard
from hosts.adopt.services import host_adopt
from hosts.adopt.sources import POSTMAP, LocalTree
from hosts.models import Host, Relay, Tunnel, TunnelPeer
from tests.lab_helpers import fingerprint, mail_host_fixture  # noqa: F401 (fixture)
from tests.render_world import HASH

MAIN_CF = """\
# built by hand after the ISPmail guide
myhostname = mail.family.example
virtual_mailbox_domains = hash:/etc/postfix/vdomains
virtual_mailbox_maps = lmdb:/etc/postfix/vmailbox
virtual_alias_maps = hash:/etc/postfix/virtual
smtpd_sender_login_maps = hash:/etc/postfix/senders
relayhost = [smtp.provider.example]:587
smtp_sasl_password_maps = hash:/etc/postfix/sasl_passwd
smtp_tls_security_level = encrypt
message_size_limit = 52428800
"""
TABLES = {
    "vdomains": "family.example OK\nother.example OK\n",
    "vmailbox": "alice@family.example family.example/alice/\n"
    "carol@family.example family.example/carol/\nbob@other.example other.example/bob/\n",
    "virtual": "team@family.example alice@family.example, carol@family.example\n"
    "@other.example bob@other.example\n"
    "# a comment, then a line continued\npostmaster@family.example\n  alice@family.example\n",
    "senders": "alice@family.example alice@family.example\n"
    "carol@family.example carol@family.example\nbob@other.example bob@other.example\n"
    "team@family.example alice@family.example, carol@family.example\n",
    "sasl_passwd": "[smtp.provider.example]:587 family@provider.example:relay-secret\n",
}
DOVECOT = """\
passdb {
  driver = passwd-file
  args = scheme=BLF-CRYPT username_format=%u /etc/dovecot/users
}
"""
USERS = (
    f"alice@family.example:{HASH}::::::userdb_quota_rule=*:storage=1024M\n"
    f"carol@family.example:{HASH.removeprefix('{BLF-CRYPT}')}::::::\n"
    f"bob@other.example:{HASH}::::::userdb_quota_rule=*:storage=2G\n"
)


HUB = """\
[Interface]
Address = 10.8.0.1/24
ListenPort = 51820
PrivateKey = {hub}
MTU = 1380
PostUp = iptables -A FORWARD -i %i -j ACCEPT

[Peer]
PublicKey = {home_public}
AllowedIPs = 10.8.0.2/32
"""
SPOKE = """\
[Interface]
Address = 10.8.0.2/32
PrivateKey = {home}

[Peer]
PublicKey = {hub_public}
Endpoint = 198.51.100.1:51820
AllowedIPs = 10.8.0.0/24
PersistentKeepalive = 15
"""


@pytest.fixture
def keys() -> dict[str, str]:
    made = {name: wireguard.generate_private_key() for name in ("hub", "home")}
    return {**made, **{f"{name}_public": wireguard.public_key(k) for name, k in made.items()}}


def wg0(root: Path, text: str) -> None:
    (root / "etc/wireguard").mkdir(parents=True, exist_ok=True)
    (root / "etc/wireguard/wg0.conf").write_text(text)


@pytest.fixture
def vps(db, tmp_path, keys):
    """The gateway, adopted first: its HAProxy flavour and the hub of the tunnel."""
    vps = Host.objects.create(
        name="vps", is_gateway=True, ssh_address="198.51.100.1", public_ipv4="198.51.100.1"
    )
    root = tmp_path / "vps"
    wg0(root, HUB.format(**keys))
    (root / "etc/haproxy").mkdir(parents=True)
    (root / "etc/haproxy/haproxy.cfg").write_text("global\n")
    report = host_adopt(host=vps, tree=LocalTree(root)).report
    assert report.errors == [] and report.conflicts == []
    return vps


def built(root: Path, keys: dict, **changes: str) -> LocalTree:
    """The host's /etc as its owner made it, each table made with the real postmap."""
    wg0(root, SPOKE.format(**keys))
    postfix = root / "etc/postfix"
    postfix.mkdir(parents=True, exist_ok=True)
    (postfix / "main.cf").write_text(changes.pop("main_cf", MAIN_CF))
    for name, text in {**TABLES, **changes}.items():
        (postfix / name).write_text(text)
        kind = "lmdb" if name == "vmailbox" else "hash"
        subprocess.run([POSTMAP, f"{kind}:{postfix / name}"], check=True)
    (root / "etc/dovecot/conf.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/dovecot/conf.d/auth-passwdfile.conf.ext").write_text(DOVECOT)
    (root / "etc/dovecot/users").write_text(USERS)
    return LocalTree(root)


@pytest.fixture
def home(vps):
    return Host.objects.create(
        name="home",
        is_mailserver=True,
        mail_backend="postfix-dovecot",
        ssh_address="192.0.2.2",
    )


def test_it_adopts_the_directory_and_the_relay_with_nothing_lost(home, tmp_path, keys):
    adoption = host_adopt(host=home, tree=built(tmp_path / "home", keys))
    assert adoption.report.errors == [] and adoption.report.routing == []
    assert set(Domain.objects.values_list("name", flat=True)) == {"family.example", "other.example"}
    assert {m.address: m.quota_mb for m in Mailbox.objects.all()} == {
        "alice@family.example": 1024,
        "carol@family.example": 0,
        "bob@other.example": 2048,
    }
    assert set(Mailbox.objects.values_list("password_hash", flat=True)) == {HASH}
    team = Alias.objects.get(local_part="team")
    assert team.destinations == ["alice@family.example", "carol@family.example"]
    assert team.allowed_as_sender
    assert Alias.objects.get(local_part="", domain__name="other.example").destinations == [
        "bob@other.example"
    ]
    home.refresh_from_db()
    assert (
        home.fqdn == "mail.family.example" and home.relay.next_hop == "[smtp.provider.example]:587"
    )
    assert home.relay.password == "relay-secret" and home.relay.tls_level == "encrypt"
    logged = LogEntry.objects.get_for_model(Mailbox).filter(action=LogEntry.Action.CREATE)
    assert logged.count() == 3  # in the change log like any other change, the hash masked
    assert {entry.changes_dict["password_hash"][1] for entry in logged} == {"(set)"}
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM hosts_relay")
        assert "relay-secret" not in cursor.fetchone()[0]  # encrypted at rest
    report = "\n".join(adoption.report.lines())
    assert "/etc/postfix/main.cf:10: message_size_limit = 52428800 (Mailgate: nothing)" in report
    assert "/etc/postfix/virtual:4: alias postmaster@family.example" in report
    assert adoption.plan.destructive == ()
    tunnel = Tunnel.objects.get()
    assert (tunnel.hub.name, tunnel.subnet, tunnel.listen_port, tunnel.mtu) == (
        "vps",
        "10.8.0.0/24",
        51820,
        1380,
    )
    assert tunnel.hub_private_key == keys["hub"] and tunnel.hub.gateway_proxy == "haproxy"
    peer = TunnelPeer.objects.get()
    assert (peer.host, peer.private_key, peer.keepalive) == (home, keys["home"], 15)
    assert str(Host.objects.get(pk=home.pk).tunnel_address) == "10.8.0.2"
    assert "/etc/postfix/mailgate/virtual_mailboxes" in {f.path for f in adoption.plan.changes}


def test_a_route_mailgate_cannot_keep_is_in_the_report(home, tmp_path, keys):
    senders = (
        TABLES["senders"].replace(
            "alice@family.example, carol@family.example", "carol@family.example"
        )
        + "alice@other.example bob@other.example, alice@family.example\n"
    )
    adoption = host_adopt(host=home, tree=built(tmp_path / "home", keys, senders=senders))
    assert adoption.report.routing == [
        "senders alice@other.example: bob@other.example, alice@family.example before, "
        "not found after",
        # Mailgate lets every mailbox behind an alias marked as a sender send as it.
        "senders team@family.example: carol@family.example before, "
        "alice@family.example,carol@family.example after",
    ]
    assert any("sender login alice@other.example" in str(f) for f in adoption.report.not_understood)


@pytest.mark.parametrize(
    ("table", "line", "said"),
    [
        ("virtual", "info@family.example |/usr/bin/procmail\n", "forwards only to addresses"),
        ("virtual", "localonly alice@family.example\n", "Mailgate's aliases are addresses"),
        ("vmailbox", "dave@nowhere.example nowhere.example/dave/\n", "not one the host serves"),
        ("virtual", "@family.example nobody@family.example\n",  # no mailbox: the catch-all
         "a forwarding loop: @family.example -> nobody@family.example -> @family.example"),
    ],
)  # fmt: skip
def test_a_line_mailgate_cannot_express_is_refused_with_its_line(
    home, tmp_path, keys, table, line, said, capsys
):
    tree = built(tmp_path / "home", keys, **{table: TABLES[table] + line})
    with pytest.raises(CommandError, match="nothing was written"):
        call_command("adopt", host="home", source=str(tree.root))
    printed = capsys.readouterr().out
    number = len(TABLES[table].splitlines()) + 1
    assert f"/etc/postfix/{table}:{number}: " in printed and said in printed, printed
    assert not Domain.objects.exists() and not Relay.objects.exists()
    assert Host.objects.get(pk=home.pk).relay is None and not TunnelPeer.objects.exists()


def test_a_dry_run_writes_nothing(home, tmp_path, keys, capsys):
    call_command(
        "adopt", host="home", source=str(built(tmp_path / "home", keys).root), dry_run=True
    )
    printed = capsys.readouterr().out
    assert "Plan:" in printed and "created  /etc/postfix/mailgate/virtual_aliases" in printed
    assert not Domain.objects.exists() and not Mailbox.objects.exists()


# --- over SSH, read-only ------------------------------------------------------------------------


@pytest.fixture
def reachable(home, lab, keys):
    """The same home server, now a real host with sshd, its files where Postfix has them."""
    built(lab.root / "private", keys)
    home.ssh_address, home.ssh_private_key, home.ssh_host_key = (
        lab.address, lab.client_key, lab.host_key
    )  # fmt: skip
    home.save()
    return home


def test_it_adopts_over_ssh_and_changes_nothing_on_the_host(reachable, lab, capsys):
    before = fingerprint(lab)
    call_command("adopt", host="home")
    printed = capsys.readouterr().out
    assert "/etc/postfix/vdomains:1: domain family.example" in printed and "Plan:" in printed
    assert Mailbox.objects.count() == 3 and TunnelPeer.objects.get().host == reachable
    assert fingerprint(lab) == before


def test_the_host_page_shows_the_dry_run_then_adopts(reachable, lab, owner, client):
    client.force_login(owner)
    url = reverse("hosts:host-adopt", args=[reachable.pk])
    shown = client.get(url)
    assert (
        b"mailbox alice@family.example" in shown.content and b"Adopt into Mailgate" in shown.content
    )
    assert not Mailbox.objects.exists()
    adopted = client.post(url)
    assert b"Adopted." in adopted.content and Mailbox.objects.count() == 3
    logged = LogEntry.objects.get_for_model(Mailbox)
    assert {entry.actor for entry in logged} == {owner}  # who adopted them


def test_a_table_without_its_database_is_read_from_its_text(home, tmp_path, keys):
    tree = built(tmp_path / "home", keys)
    (tree.root / "etc/postfix/vdomains.db").unlink()
    adoption = host_adopt(host=home, tree=tree)
    assert set(Domain.objects.values_list("name", flat=True)) == {"family.example", "other.example"}
    assert any("has no database" in str(item) for item in adoption.report.not_understood)
    assert adoption.report.routing == []


def test_the_api_reports_then_adopts_and_refuses_bad_input_with_its_line(
    reachable, lab, owner, api
):
    client = api(owner)
    url = reverse("api:host-adopt", args=[reachable.pk])
    shown = client.post(url, {}, format="json")
    assert shown.status_code == 200, shown.content
    body = shown.json()
    assert body["dry_run"]
    assert "/etc/postfix/vdomains:1: domain family.example" in body["report"]["adopted"]
    assert body["plan"]["destructive"] == [] and not Mailbox.objects.exists()
    assert client.post(url, {"dry_run": False}, format="json").status_code == 200
    assert Mailbox.objects.count() == 3

    virtual = lab.root / "private/etc/postfix/virtual"
    virtual.write_text(TABLES["virtual"] + "info@family.example |/usr/bin/procmail\n")
    subprocess.run([POSTMAP, f"hash:{virtual}"], check=True)
    refused = client.post(url, {"dry_run": False}, format="json")
    assert refused.status_code == 422 and refused.json()["code"] == "adoption_refused"
    assert any(e.startswith("/etc/postfix/virtual:6:") for e in refused.json()["report"]["errors"])


def test_a_sieve_script_of_the_hosts_own_is_reported_and_never_dropped(home, tmp_path, keys):
    """A user's own vacation or redirect cannot be turned into Mailgate's fields in general: the
    report names each script, what it does and whether Mailgate's Dovecot still runs it."""
    tree = built(tmp_path / "home", keys)
    carol = tree.root / "var/vmail/family.example/carol"
    (carol / "sieve").mkdir(parents=True)
    (carol / ".dovecot.sieve").write_text('require "vacation";\nvacation :days 7 "Away";\n')
    (carol / "sieve/forward.sieve").write_text('redirect "carol@elsewhere.test";\n')
    (tree.root / "etc/dovecot/conf.d/90-sieve.conf").write_text(
        "plugin {\n  sieve_after = /etc/dovecot/sieve-after\n}\n"
    )
    report = "\n".join(host_adopt(host=home, tree=tree).report.lines())
    for said in (
        "/var/vmail/family.example/carol/.dovecot.sieve: a sieve script of carol@family.example "
        "with an auto-reply (vacation): not adopted (Mailgate's forward and auto-reply stay "
        "off); it keeps running after Mailgate's own script",
        "/var/vmail/family.example/carol/sieve/forward.sieve: a sieve script of "
        "carol@family.example with a forward (redirect): not adopted",
        "/etc/dovecot/conf.d/90-sieve.conf:2: sieve_after = /etc/dovecot/sieve-after: "
        "Mailgate's Dovecot runs no script of this setting",
    ):
        assert said in report, report
    carol_box = Mailbox.objects.get(local_part="carol")
    assert not carol_box.autoreply_enabled and carol_box.forward_to == []


def test_the_hosts_own_mail_is_left_to_mailgates_rows_and_a_different_target_reported(
    home, tmp_path, keys
):
    """root@ and postmaster@ of the host's own name and localhost (cron, bounces) are rows
    Mailgate writes itself, to the postmaster: not refused as a domain the host does not serve,
    and where the host sent them elsewhere, the routing comparison says so."""
    local = (
        "root@mail.family.example postmaster@family.example\n"
        "postmaster@localhost carol@family.example\n"
    )
    adoption = host_adopt(
        host=home, tree=built(tmp_path / "home", keys, virtual=TABLES["virtual"] + local)
    )
    report = "\n".join(adoption.report.lines())
    assert adoption.report.errors == []
    assert (
        "alias root@mail.family.example -> postmaster@family.example: the host's own mail" in report
    )
    assert not Alias.objects.filter(domain__name__in=["localhost", "mail.family.example"]).exists()
    assert adoption.report.routing == [
        "aliases postmaster@localhost: carol@family.example before, postmaster@family.example after"
    ]
