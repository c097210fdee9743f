"""The fixtures shared by the tests: the named people and domains (tests/named.py) for one test
each, a transaction around a module for data its tests share, markers by what a test uses, a
Celery worker, certificates and lab hosts."""

import contextlib
import os
import signal
import subprocess
import sys

import pytest
from django.core.cache import cache
from django.db import connection, transaction

from gateway.models import Domain
from hosts.render import context as render_context
from lab.ca import LabCA
from tests import named, template_database
from tests.deploy_world import lab_with_relay_files
from tests.helpers import api_client_for
from tests.shared import ROOT

# Markers by what a test uses (pyproject.toml lists them): a new test that builds namespaces or
# starts a worker through these fixtures is marked without anyone remembering to.
MARKED_FIXTURES = {
    "netns": {"labs", "lab", "namespace", "net"},
    "worker": {"start_worker"},
    # a real ACME server: each order waits on the CA's polls, a second or more
    "slow": {"pebble"},
}
MARKED_MODULES = {
    "netns": {"test_lab_reference"},
    "browser": {"test_project_browser"},
    # schemathesis; bin/run sets up a venv; Postfix and OpenDKIM signing through a key rotation;
    # Mailu's own admin and its containers' tools (~50 s); a fresh clone and the panel's
    # commands and settings in processes of their own; writers racing in threads on committed
    # transactions; OpenDKIM, rspamd and Postfix run on the signing keys; servers the tests
    # start and talk to: BIND for the DNS push, an HTTP server and GnuPG's agent for the
    # trusted CA's key, GnuPG making keys, Dovecot for logins and deliveries
    "slow": {
        "test_api_schema",
        "test_project_run_command",
        "test_zones_signing_postfix",
        "test_render_mailu_oracle",
        "test_project_checkout",
        "test_project_settings",
        "test_project_sqlite",
        "test_security_races",
        "test_zones_signing",
        "test_zones_push",
        "test_keys_trust",
        "test_keys_upload",
        "test_render_mailbox_features",
    },
}


def pytest_collection_modifyitems(items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        marks = {
            name for name, fixtures in MARKED_FIXTURES.items() if fixtures & set(item.fixturenames)
        }
        marks |= {name for name, modules in MARKED_MODULES.items() if module in modules}
        if marks:
            marks.add("slow")
        for name in sorted(marks):
            item.add_marker(name)


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts without cached state, such as the status check's cooldown."""
    cache.clear()


@pytest.fixture
def owner(db):
    return named.owner()


@pytest.fixture
def alice(db):
    return named.user("alice")


@pytest.fixture
def bob(db):
    return named.user("bob")


@pytest.fixture
def carol(db):
    return named.user("carol")


@pytest.fixture
def family(alice, carol):
    return named.family(alice, carol)


@pytest.fixture
def other(bob):
    return named.other(bob)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, django_db_blocker):
    """pytest-django's (a test database per xdist worker), each a copy of one migrated
    template (tests/template_database.py)."""
    with django_db_blocker.unblock():
        template_database.use_template()


@pytest.fixture(scope="module")
def module_transaction(django_db_setup, django_db_blocker):
    """A transaction around a whole module: what a module-scoped fixture writes inside it is
    there for every test of the module, whose own transaction (a savepoint in this one) rolls
    back to it; this one rolls back after the last test. Not for ``transactional_db`` tests."""
    with django_db_blocker.unblock(), transaction.atomic():
        yield
        transaction.set_rollback(True)


@pytest.fixture(scope="module")
def family_saved(module_transaction):
    """alice, carol and family.example, written once for a module (tests/named.py)."""
    alice, carol = named.user("alice"), named.user("carol")
    return {"alice": alice, "carol": carol, "family": named.family(alice, carol)}


@pytest.fixture(scope="module")
def other_saved(module_transaction):
    """bob and other.example, written once for a module (tests/named.py)."""
    bob = named.user("bob")
    return {"bob": bob, "other": named.other(bob)}


@pytest.fixture
def api():
    return api_client_for


@pytest.fixture
def start_worker(tmp_path, monkeypatch):
    """Start ``celery worker`` against the test database, with ``arguments`` added (``--beat``);
    stop it (and its children) after."""
    workers = []

    def start(*arguments: str, concurrency: int = 1, **variables):
        # Celery prefers CELERY_BROKER_URL from the environment over a client's own argument.
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        database = connection.settings_dict
        environment = {
            **os.environ,
            "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:"
            f"{database['PORT']}/{database['NAME']}",
            "MAILGATE_DATA_DIR": str(tmp_path),
            **variables,
        }
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "gateway",
                "worker",
                *(("--pool", "solo") if concurrency == 1 else ("-c", str(concurrency))),
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "INFO",
                *arguments,
            ],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        with contextlib.suppress(ProcessLookupError):  # a test may have killed it already
            os.killpg(worker.pid, signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
        print(output)  # shown by pytest when the test fails


@pytest.fixture
def certbot(tmp_path, monkeypatch):
    """Certificates where certbot keeps them, for every enabled domain's mail host name (a
    mail server with several names checks that each has its own before it names them)."""
    live = tmp_path / "letsencrypt-live"
    monkeypatch.setattr(render_context, "CERTBOT_LIVE", str(live))
    ca = LabCA()
    for name in Domain.objects.filter(enabled=True).values_list("mail_hostname", flat=True):
        issued = ca.issue(name)
        (live / name).mkdir(parents=True, exist_ok=True)
        (live / name / "fullchain.pem").write_bytes(issued.fullchain)
        (live / name / "privkey.pem").write_bytes(issued.privkey)
    return live


@pytest.fixture
def labs():
    """Make lab hosts ready for a relay's Postfix files; all are removed after the test."""
    made = []

    def make():
        made.append(lab_with_relay_files())
        return made[-1]

    yield make
    for lab in made:
        lab.close()
