"""The embedded default runs on SQLite, and the whole suite on PostgreSQL: the API's queries
that touch every table the directory pages read run here on SQLite too (DISTINCT ON, say, is
PostgreSQL's alone)."""

import os
import subprocess
import sys

from tests.shared import ROOT

SCRIPT = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient
from gateway import services
from gateway.models import Domain
from hosts.models import Deployment, Host

owner = get_user_model().objects.create_superuser("owner", password=None)
host = Host.objects.create(
    name="relay", is_relay=True, ssh_address="192.0.2.1",
    ssh_host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
)
now = timezone.now()
Deployment.objects.create(host=host, status="succeeded", started_at=now, finished_at=now)
api = APIClient()
api.force_authenticate(owner)
domain = api.post(
    "/api/domains/",
    {
        "name": "family.example",
        "mail_hostname": "mail.family.example",
        "first_mailbox": "alice",
        "first_mailbox_password": "correct horse battery",
    },
    format="json",
)
assert domain.status_code == 201, domain.content
mailbox = api.post(
    "/api/mailboxes/",
    {"domain": domain.json()["id"], "local_part": "bob", "password": "correct horse battery"},
    format="json",
)
assert mailbox.status_code == 201, mailbox.content
for path in ("/api/domains/", "/api/mailboxes/", "/api/aliases/", "/api/deployments/"):
    answer = api.get(path)
    assert answer.status_code == 200, (path, answer.content)
print("live:", mailbox.json()["live"])
"""


def test_the_apis_directory_queries_run_on_sqlite(tmp_path):
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL"}
    }
    environment.update(
        DJANGO_SETTINGS_MODULE="gateway.settings",
        MAILGATE_DATA_DIR=str(tmp_path),
        SECRET_KEY="test",
        MAILGATE_ENCRYPTION_KEYS="qp4DmdSSnhBZJ4OA6cXx7a4ZCkqmJV0S1eqhxO5S8tA=",
        MAILGATE_CONVERGE="false",
        ALLOWED_HOSTS="testserver",
        MAILGATE_BCRYPT_ROUNDS="4",
    )
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "live:" in result.stdout
