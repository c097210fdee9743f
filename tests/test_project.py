"""The project is consistent: Django's checks pass and no model change lacks a migration."""

from django.core.management import call_command


def test_it_passes_django_checks():
    call_command("check", fail_level="WARNING")


def test_it_has_a_migration_for_every_model_change(db):
    call_command("makemigrations", check=True, dry_run=True, verbosity=0)
