"""The test databases are copies of one migrated template (tests/template_database.py)."""

from django.db import connection

from tests import template_database


def test_the_test_database_is_a_copy_of_the_template_of_the_migrations_as_they_are(db):
    template = connection.settings_dict["TEST"]["TEMPLATE"]
    assert template.endswith(f"_template_{template_database.migrations_digest()}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [template])
        assert cursor.fetchone() == (1,)
        cursor.execute("SELECT count(*) FROM django_migrations")
        assert cursor.fetchone()[0] > 0  # migrated, and copied with its history
