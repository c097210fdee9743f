"""Adopting a Mailu (issue 19): Mailu's own admin (tests/mailu_oracle.py), filled through its own
import with several domains, users, alternatives, managers and aliases, is exported; Mailgate
adopts the export, renders its import back, Mailu takes it (the full replace Mailgate deploys),
and Mailu's export afterwards equals the one before for every field Mailgate models, and for
what Mailu keeps through the import. What Mailgate does not model is listed in the report with
its line; bad input is refused with its line and writes nothing."""

import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from gateway import services
from gateway.models import Alias, Domain, Mailbox
from hosts import services as host_services
from hosts.adopt.services import host_adopt
from hosts.adopt.sources import RemoteTree
from hosts.models import Host
from hosts.render import mailu, render_host
from hosts.transport import Session
from lab.hosts import LabHost
from tests.mailu_oracle import mailu_admin_fixture, mailu_admin_process_fixture  # noqa: F401
from tests.named import PASSWORD
from tests.render_world import HASH
from tests.test_render_mailu_oracle import docker_running

pytestmark = pytest.mark.slow  # Mailu's own admin

BARE = HASH.removeprefix("{BLF-CRYPT}")
MIB = 1024 * 1024
FILLED = {
    "domain": [
        {"name": "family.example", "alternatives": ["family.test"]},
        {"name": "other.example", "max_users": 10},
        {"name": "xn--bcher-kva.example"},
    ],
    "user": [
        {"email": "alice@family.example", "password": BARE, "displayed_name": "Alice",
         "quota_bytes": 2048 * MIB, "manager_of": ["family.example"]},
        {"email": "carol@family.example", "password": BARE, "quota_bytes": 0,
         "forward_enabled": True, "forward_destination": ["carol@elsewhere.test"],
         "reply_enabled": True, "reply_subject": "Away", "spam_threshold": 60},
        {"email": "bob@other.example", "password": BARE, "displayed_name": "Bob B.",
         "quota_bytes": 512 * MIB, "manager_of": ["other.example"]},
        {"email": "reader@xn--bcher-kva.example", "password": BARE, "quota_bytes": 10 * MIB},
    ],
    "alias": [
        {"email": "team@family.example",
         "destination": ["alice@family.example", "carol@family.example"]},
        {"email": "%@other.example", "destination": ["bob@other.example"], "wildcard": True},
        {"email": "info@xn--bcher-kva.example", "destination": ["reader@xn--bcher-kva.example"]},
    ],
}  # fmt: skip
MODELED = {
    "domain": ("name", ["alternatives"]),
    "user": ("email", ["password", "displayed_name", "quota_bytes", "enabled", "manager_of"]),
    "alias": ("email", ["destination", "wildcard"]),
}


@pytest.fixture
def filled(mailu_admin, tmp_path):
    """A Mailu filled through its own import, and its export as YAML (as a person runs it)."""
    admin = mailu_admin({"SECRET_KEY": "0123456789abcdef"})
    assert admin.apply(json.dumps(FILLED).encode()).ok
    path = tmp_path / "export.yaml"
    exported = admin.flask("mailu", "config-export", "--full", "--secrets", "-o", str(path))
    assert exported.ok, exported.output
    return admin, path


@pytest.fixture
def home(db):
    return Host.objects.create(
        name="home",
        is_mailserver=True,
        mail_backend="mailu",
        ssh_address="192.0.2.2",
        tunnel_address="10.8.0.2",
        fqdn="mail.family.example",
    )


def modeled(export: dict) -> dict:
    """Each domain, user and alias with the fields Mailgate models (and what Mailu keeps)."""
    return {
        section: {
            row[key]: {f: sorted(v) if isinstance(v := row.get(f), list) else v for f in fields}
            for row in export[section]
        }
        for section, (key, fields) in MODELED.items()
    }


def adopt(*arguments, **options) -> str:
    lines = []

    class Out:
        def write(self, text):
            lines.append(text)

        def flush(self):
            pass

    call_command("adopt", *arguments, stdout=Out(), **options)
    return "".join(lines)


def test_mailu_holds_after_the_deployment_what_it_held_before(filled, home):
    admin, path = filled
    get_user_model().objects.create_user("alice@family.example")
    before = admin.export()
    output = adopt(host="home", mailu_export=str(path))
    assert Mailbox.objects.count() == 4 and Alias.objects.count() == 3
    assert Domain.objects.get(name="family.example").managers.get().username.startswith("alice")

    document = render_host(home).file(mailu.IMPORT_PATH).content
    assert admin.apply(document).ok
    assert modeled(admin.export()) == modeled(before)

    # What Mailgate does not model is listed where the export says it, never dropped.
    for said in (
        "user carol@family.example: forward_enabled = True",
        "user carol@family.example: reply_subject = 'Away'",
        "user carol@family.example: spam_threshold = 60",
        "domain family.example: alternatives = ['family.test'] (Mailu keeps it",
        "domain other.example: max_users = 10",
        "bob@other.example manages other.example in Mailu but has no panel account",
    ):
        assert said in output, output
    assert re.search(rf"{re.escape(str(path))}:\d+: user carol@family.example: forward", output)


def test_a_dry_run_reports_and_writes_nothing(filled, home):
    _, path = filled
    output = adopt(host="home", mailu_export=str(path), dry_run=True)
    assert "mailbox alice@family.example" in output and "Dry run: nothing was written." in output
    assert not Domain.objects.exists()


@pytest.mark.parametrize(
    ("rewrite", "said"),
    [
        (lambda text: text.replace("%@other.example", "sales-%@other.example"),
         r":\d+: wildcard alias sales-%@other.example: Mailgate's only pattern is the catch-all"),
        (lambda text: text + "\n  - [unclosed\n", r":\d+: not YAML or JSON"),
        (lambda text: text.replace("bob@other.example", "bob!@other.example", 1),
         r":\d+: mailbox bob!@other.example: local_part"),
    ],
    ids=["a pattern alias", "malformed", "an address Mailgate refuses"],
)  # fmt: skip
def test_bad_input_is_refused_with_its_line_and_nothing_is_written(
    filled, home, rewrite, said, capsys
):
    _, path = filled
    path.write_text(rewrite(path.read_text()))
    with pytest.raises(CommandError, match="nothing was written"):
        call_command("adopt", host="home", mailu_export=str(path))
    assert re.search(re.escape(str(path)) + said, capsys.readouterr().out)
    assert not Domain.objects.exists() and not Mailbox.objects.exists()


# --- the first deployment to a Mailu that holds what Mailgate does not know ---------------------


@pytest.fixture
def lab():
    host = LabHost.create(private_dirs=("/opt/mailu", "/usr/local/bin"))
    yield host
    host.close()


@pytest.fixture
def running(db, filled, lab):
    """A real host over SSH whose Mailu (the filled one) answers ``docker compose exec admin``."""
    admin, _ = filled
    docker_running(admin, lab.root / "private/usr/local/bin")
    (lab.root / "private/opt/mailu/docker-compose.yml").write_text("services: {}\n")
    return Host.objects.create(
        name="mailu",
        is_mailserver=True,
        mail_backend="mailu",
        ssh_address=lab.address,
        ssh_private_key=lab.client_key,
        ssh_host_key=lab.host_key,
        tunnel_address="10.8.0.2",
        fqdn="mail.family.example",
    )


def test_a_first_import_that_would_drop_what_mailu_holds_is_destructive_until_adopted(running):
    services.domain_create(
        name="family.example",
        mail_hostname="mail.family.example",
        first_mailbox="alice",
        first_mailbox_password=PASSWORD,
    )
    removes = host_services.host_plan(host=running).destructive
    assert "mailbox carol@family.example" in removes and "domain other.example" in removes
    assert "alias @other.example" in removes and "mailbox alice@family.example" not in removes

    with Session(running) as session:
        adoption = host_adopt(host=running, tree=RemoteTree(session))
    assert "domain family.example is in Mailgate already" in "\n".join(adoption.report.lines())
    assert host_services.host_plan(host=running).destructive == ()
