"""The signing files Mailgate renders for the mail server: OpenDKIM with its milter lines in
Postfix's main.cf (Postfix + Dovecot), rspamd's signing override (Mailu); only the key that signs
now is written, as a secret file, and the staged checks (``opendkim -n``, ``postfix check``)
pass. Signing itself is proven in test_zones_signing_postfix.py."""

import shutil
import subprocess

import pytest
from django.urls import reverse

from gateway import bundle
from gateway.bundle import RenderError
from hosts.checks import run_check, run_checks
from hosts.models import Host
from hosts.render import postfix, render_host
from tests.render_world import assert_golden
from tests.world import build_infrastructure
from zones import opendkim, rspamd, services
from zones.models import DkimKey

KEYS = "/etc/opendkim/mailgate/keys"
MILTERS = [
    "smtpd_milters = inet:127.0.0.1:8891",
    "non_smtpd_milters = $smtpd_milters",
    "milter_default_action = accept",
    "milter_protocol = 6",
]


@pytest.fixture
def world(family, other):
    return build_infrastructure()


@pytest.fixture
def rotating(family, other):
    """family.example mid-rotation (dkim signs, dkim2 only published); other.example signs
    with dkim."""
    old = services.dkim_key_generate(domain=family)
    new = services.dkim_key_generate(domain=family, selector="dkim2")
    services.dkim_key_generate(domain=other)
    return old, new


@pytest.fixture
def mailu(world):
    world["home"].mail_backend = "mailu"
    world["home"].mailu_secret_key = "0123456789abcdef0123456789abcdef"
    world["home"].relay = None  # the Bridge on 127.0.0.1 is out of a container's reach
    world["home"].save()
    return world["home"]


def main_cf_lines(host: Host) -> list[str]:
    return render_host(host).file(postfix.MAIN_CF).text.splitlines()


def test_it_adds_no_signer_while_no_domain_has_a_key(world):
    bundle = render_host(world["home"])
    assert not any("opendkim" in file.path for file in bundle.files)
    assert not any("milter" in line for line in main_cf_lines(world["home"]))


def test_it_renders_opendkim_as_reviewed(world, rotating):
    unit = render_host(world["home"]).unit("opendkim")
    assert_golden(unit.files[0].content, "mailserver/etc/opendkim.conf")
    files = {file.path: file for file in unit.files}
    assert files[opendkim.KEY_TABLE].text.splitlines()[1:] == [
        f"dkim._domainkey.family.example family.example:dkim:{KEYS}/family.example.dkim.private",
        f"dkim._domainkey.other.example other.example:dkim:{KEYS}/other.example.dkim.private",
    ]
    assert files[opendkim.SIGNING_TABLE].text.splitlines()[1:] == [
        "family.example dkim._domainkey.family.example",
        "other.example dkim._domainkey.other.example",
    ]


def test_it_writes_only_the_signing_keys_as_secrets_for_opendkim(world, rotating):
    old, new = rotating
    unit = render_host(world["home"]).unit("opendkim")
    keys = [file for file in unit.files if file.path.startswith(KEYS)]
    assert [file.path for file in keys] == [
        f"{KEYS}/family.example.dkim.private",
        f"{KEYS}/other.example.dkim.private",
    ]
    assert keys[0].content == old.private_key.encode()
    assert all((f.mode, f.owner, f.secret) == (0o600, "opendkim:opendkim", True) for f in keys)

    services.dkim_key_activate(key=new)
    paths = [file.path for file in render_host(world["home"]).unit("opendkim").files]
    assert f"{KEYS}/family.example.dkim2.private" in paths
    assert f"{KEYS}/family.example.dkim.private" not in paths


def test_it_refuses_a_key_that_does_not_match_its_record(world, rotating):
    old, new = rotating
    DkimKey.objects.filter(pk=old.pk).update(public_key=new.public_key)
    with pytest.raises(RenderError, match="does not match its published record"):
        render_host(world["home"])


def test_it_hands_postfix_mail_to_the_milter(world, rotating):
    lines = main_cf_lines(world["home"])
    assert lines[-len(MILTERS) :] == MILTERS
    world["spare"].relay = world["relay"]  # a relay host: its mail is signed already
    assert not any("milter" in line for line in main_cf_lines(world["spare"]))


def test_the_staged_checks_pass_opendkim_and_postfix(world, rotating, certbot, tmp_path):
    bundle = render_host(world["home"])
    bundle.write_to(tmp_path)
    results = {result.unit: result for result in run_checks(bundle, tmp_path)}
    assert results["opendkim"].ok, results["opendkim"].output
    assert results["postfix"].ok, results["postfix"].output


def test_it_signs_only_for_the_host_itself_and_logged_in_clients(world, rotating):
    """No InternalHosts beyond OpenDKIM's default (the host itself): every other client that
    reaches a milter has logged in, and port 25 runs none (hosts/render/postfix.py)."""
    conf = render_host(world["home"]).file(opendkim.CONFIG).text.splitlines()
    assert not any(line.startswith(("InternalHosts", "ExternalIgnoreList")) for line in conf)


def test_the_opendkim_check_catches_a_mistake(world, rotating, tmp_path):
    bundle = render_host(world["home"])
    bundle.write_to(tmp_path)
    conf = tmp_path / opendkim.CONFIG.lstrip("/")
    conf.write_text(conf.read_text() + "SigningTabel file:/nowhere\n")
    result = run_check("opendkim", bundle.unit("opendkim").checks[0], tmp_path)
    assert not result.ok
    assert "unrecognized parameter" in result.output


def test_a_contributed_setting_never_replaces_one_postfix_sets(world, rotating, monkeypatch):
    def loosen(ctx):
        return [("smtpd_relay_restrictions", "permit")]

    registered = bundle._settings_contributors[postfix.MAIN_CF]
    monkeypatch.setitem(bundle._settings_contributors, postfix.MAIN_CF, [*registered, loosen])
    with pytest.raises(RenderError, match=r"smtpd_relay_restrictions in /etc/postfix/main\.cf"):
        render_host(world["home"])


def test_two_contributors_cannot_set_one_parameter(world, rotating, monkeypatch):
    registered = bundle._settings_contributors[postfix.MAIN_CF]
    monkeypatch.setitem(
        bundle._settings_contributors, postfix.MAIN_CF, [*registered, opendkim.postfix_settings]
    )
    with pytest.raises(RenderError, match="smtpd_milters"):
        render_host(world["home"])


def test_the_dns_page_says_which_selector_signs(client, alice, family):
    page = reverse("zones:dns-domain", args=[family.pk])
    client.force_login(alice)
    assert "outgoing mail leaves unsigned" in client.get(page).content.decode()
    services.dkim_key_generate(domain=family)
    new = services.dkim_key_generate(domain=family, selector="dkim2")
    signing = "Outgoing mail is signed with the selector <code>{}</code>"
    assert signing.format("dkim") in client.get(page).content.decode()
    services.dkim_key_activate(key=new)
    assert signing.format("dkim2") in client.get(page).content.decode()


# --- Mailu ---------------------------------------------------------------------------------------


def test_it_renders_rspamds_override_as_reviewed(mailu, rotating):
    _, new = rotating
    unit = render_host(mailu).unit("mailu-dkim")
    assert_golden(unit.files[0].content, "mailu/overrides/rspamd/dkim_signing.conf")
    assert unit.files[0].path == "/mailu/overrides/rspamd/dkim_signing.conf"
    assert unit.activate == ("cd /opt/mailu && docker compose restart antispam",)
    assert not any("opendkim" in f.path for f in render_host(mailu).files)

    services.dkim_key_activate(key=new)
    text = render_host(mailu).file(rspamd.OVERRIDE).text
    assert 'selector = "dkim2";\n    path = "/dkim/family.example.dkim2.key";' in text


def test_it_writes_mailus_key_files_by_its_own_names(mailu, rotating):
    old, _ = rotating
    files = [f for f in render_host(mailu).files if f.path.startswith("/mailu/dkim/")]
    assert [f.path for f in files] == [
        "/mailu/dkim/family.example.dkim.key",
        "/mailu/dkim/other.example.dkim.key",
    ]
    assert files[0].content == old.private_key.encode()
    assert all((f.mode, f.owner, f.secret) == (0o600, "root:root", True) for f in files)


def test_mailus_antispam_sees_the_keys_the_override_names(mailu, rotating):
    compose = render_host(mailu).file("/opt/mailu/docker-compose.yml").text
    assert "- /mailu/overrides/rspamd:/overrides:ro\n    - /mailu/dkim:/dkim:ro" in compose


@pytest.mark.skipif(shutil.which("rspamadm") is None, reason="rspamd is not installed")
def test_it_checks_rspamds_override_with_rspamadm_before_activation(mailu, rotating, tmp_path):
    """On a host without a running Mailu the host's rspamadm parses the staged override; a
    broken one fails the check with rspamd's parser message (see
    tests/test_render_mailu_oracle.py for the override inside Mailu's whole rspamd
    configuration)."""
    bundle = render_host(mailu)
    bundle.write_to(tmp_path)
    check = bundle.unit("mailu-dkim").checks[0]
    result = run_check("mailu-dkim", check, tmp_path)
    assert result.ok, result.output
    assert "syntax OK" in result.output

    staged = tmp_path / rspamd.OVERRIDE.lstrip("/")
    staged.write_text(staged.read_text().rstrip().removesuffix("}"))  # a brace left open
    result = run_check("mailu-dkim", check, tmp_path)
    assert not result.ok
    assert "ucl parser error" in result.output and "syntax BAD" in result.output


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_rspamds_override_check_passes_shellcheck(mailu, rotating, tmp_path):
    script = tmp_path / "check.sh"
    script.write_text(f"#!/bin/bash\n{render_host(mailu).unit('mailu-dkim').checks[0]}\n")
    result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.skipif(shutil.which("rspamadm") is None, reason="rspamd is not installed")
def test_it_checks_rspamds_override_in_mailus_running_antispam(mailu, rotating, tmp_path):
    """With Mailu's antispam running, the check runs in that container (here a stand-in docker
    that runs the command on this machine), the staged override on its stdin."""
    bundle = render_host(mailu)
    bundle.write_to(tmp_path)
    docker = tmp_path / "bin" / "docker"
    docker.parent.mkdir()
    docker.write_text(
        '#!/bin/bash\necho "$@" >> "$(dirname "$0")/calls"\n'
        'case "$4" in ps) echo antispam ;; exec) shift 6; exec "$@" ;; esac\n'
    )
    docker.chmod(0o755)
    script = f'PATH={docker.parent}:"$PATH"\n{bundle.unit("mailu-dkim").checks[0]}'
    result = run_check("mailu-dkim", script, tmp_path)
    assert result.ok and "syntax OK" in result.output, result.output
    calls = (docker.parent / "calls").read_text().splitlines()
    assert calls[-1].startswith("compose -f /opt/mailu/docker-compose.yml exec -T antispam sh -c")
