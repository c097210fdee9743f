"""From the database to files: ``manage.py render`` and the host's files page render what the
models say, pass the real checks, hide secrets, and fail clearly on bad data."""

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from gateway.models import Alias, Mailbox
from hosts.models import Relay
from tests.world import build_infrastructure


@pytest.fixture
def world(family, other):
    return build_infrastructure()


def test_it_writes_the_home_servers_files_and_they_pass_the_checks(
    world, certbot, tmp_path, capsys
):
    call_command("render", host="home", out=tmp_path, check=True)
    output = capsys.readouterr().out
    assert "All checks passed." in output
    assert "pass init 'ProtonMail Bridge'" in output  # the one-time steps are shown
    main_cf = (tmp_path / "etc/postfix/main.cf").read_text()
    assert "myhostname = mail.family.example" in main_cf
    assert "relayhost = [127.0.0.1]:1025" in main_cf
    mailboxes = (tmp_path / "etc/postfix/mailgate/virtual_mailboxes").read_text()
    assert "alice@family.example OK" in mailboxes and "bob@other.example OK" in mailboxes
    assert (tmp_path / "etc/postfix/mailgate/sasl_passwd").stat().st_mode & 0o777 == 0o600


def test_it_leaves_out_what_is_disabled(world, tmp_path):
    Mailbox.objects.filter(local_part="carol").update(enabled=False)
    Alias.objects.filter(local_part="abuse", domain__name="other.example").update(enabled=False)
    call_command("render", host="home", out=tmp_path)
    assert "carol@" not in (tmp_path / "etc/postfix/mailgate/virtual_mailboxes").read_text()
    aliases = (tmp_path / "etc/postfix/mailgate/virtual_aliases").read_text()
    assert "abuse@other.example" not in aliases and "abuse@family.example" in aliases


def test_it_names_an_unknown_host(db, tmp_path):
    with pytest.raises(CommandError, match="No host is named 'nowhere'"):
        call_command("render", host="nowhere", out=tmp_path)


def test_it_fails_clearly_on_a_value_that_slipped_past_validation(world, tmp_path):
    Relay.objects.filter(name="bridge").update(username="joe@proton.me\nrelayhost = evil")
    with pytest.raises(CommandError, match=r"home: Refusing to render .* control character"):
        call_command("render", host="home", out=tmp_path)
    assert not (tmp_path / "etc").exists()


def test_it_shows_the_owner_each_hosts_files_without_secrets(client, owner, world):
    client.force_login(owner)
    page = client.get(reverse("hosts:host-files", args=[world["home"].pk])).content.decode()
    assert "/etc/postfix/main.cf" in page
    assert "smtpd_sender_login_maps = hash:/etc/postfix/mailgate/sender_logins" in page
    assert "Holds secrets: not shown." in page
    assert "bridge-pass" not in page  # the relay password, inside sasl_passwd
    assert "{BLF-CRYPT}" not in page  # the mailbox hashes, inside Dovecot's users file
    assert "postfix -c" in page and "systemctl reload-or-restart" in page


def test_it_explains_why_a_host_cannot_be_rendered(client, owner, world):
    Relay.objects.filter(name="bridge").update(username="joe@proton.me\x1b[2J")
    client.force_login(owner)
    page = client.get(reverse("hosts:host-files", args=[world["home"].pk])).content.decode()
    assert "cannot be rendered" in page and "control character" in page


def test_it_hides_hosts_from_domain_managers(client, alice, world):
    client.force_login(alice)
    response = client.get(reverse("hosts:host-files", args=[world["home"].pk]))
    assert response.status_code == 404
