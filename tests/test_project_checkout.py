"""The project is consistent: Django's checks pass and no model change lacks a migration."""

import os
import subprocess
import sys

from django.core.management import call_command

from tests.shared import ROOT


def test_it_passes_django_checks():
    call_command("check", fail_level="WARNING")


def test_it_has_a_migration_for_every_model_change(db):
    call_command("makemigrations", check=True, dry_run=True, verbosity=0)


def test_the_offline_commands_run_on_a_fresh_checkout():
    """``manage.py check`` and ``makemigrations --check`` need no secrets set (a reviewer's or
    a fresh clone's first commands); anything that uses the key still does."""
    environment = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DATABASE_URL")}
    environment["DJANGO_SETTINGS_MODULE"] = "gateway.settings"
    for command in (["check"], ["makemigrations", "--check", "--dry-run"]):
        result = subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT, env=environment, capture_output=True, text=True,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    served = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--plan"],
        cwd=ROOT, env=environment, capture_output=True, text=True,
    )  # fmt: skip
    assert served.returncode != 0 and "Set the SECRET_KEY" in served.stderr
