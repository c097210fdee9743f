"""Every test database is a copy of one migrated template, on PostgreSQL.

Running every migration takes each pytest process ~3 s, the largest fixed cost of the fast
loop on two cores. PostgreSQL copies a database in a fraction of that (``CREATE DATABASE ...
TEMPLATE``), and Django's test setup uses ``TEST["TEMPLATE"]`` for it; its ``migrate`` then
finds every migration applied. The template is named after a digest of every migration file,
so a changed or new migration makes a new one (and the old ones go); processes that start
together build it once, one after the other through an advisory lock."""

import hashlib
from pathlib import Path

from django.apps import apps
from django.core.management import call_command
from django.db import DatabaseError, connections

POSTGRESQL = "django.db.backends.postgresql"
LOCK = 0x6D61696C  # pg_advisory_lock's key for building a template ("mail")
BUILDING = "template"  # the connection alias the template is migrated through


def use_template(alias: str = "default") -> None:
    """Point the test database of ``alias`` at the migrated template, building it first if
    there is none for the migrations as they are now."""
    database = connections.settings[alias]
    if database["ENGINE"] != POSTGRESQL:
        return
    prefix = f"{database['NAME']}_template_"
    name = prefix + migrations_digest()
    with connections[alias]._nodb_cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [LOCK])
        try:
            cursor.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [prefix]
            )
            existing = {row[0] for row in cursor.fetchall()}
            if name not in existing:
                _build(cursor, alias, name)
                _drop_stale(cursor, existing - {name})
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK])
    database.setdefault("TEST", {})["TEMPLATE"] = name


def migrations_digest() -> str:
    """A digest of every installed app's migration files (Django's own among them)."""
    digest = hashlib.sha256()
    for config in sorted(apps.get_app_configs(), key=lambda config: config.label):
        for path in sorted(Path(config.path, "migrations").glob("*.py")):
            digest.update(f"{config.label}/{path.name}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _build(cursor, alias: str, name: str) -> None:
    """Migrate a database of its own and give it ``name`` only once it is complete, so a
    run stopped halfway leaves no template that looks whole."""
    partial = f"{name}_partial"
    cursor.execute(f'DROP DATABASE IF EXISTS "{partial}"')
    cursor.execute(f'CREATE DATABASE "{partial}"')
    connections.settings[BUILDING] = {**connections.settings[alias], "NAME": partial}
    try:
        call_command("migrate", database=BUILDING, run_syncdb=True, interactive=False, verbosity=0)
    finally:
        connections[BUILDING].close()
        del connections[BUILDING]
        del connections.settings[BUILDING]
    cursor.execute(f'ALTER DATABASE "{partial}" RENAME TO "{name}"')


def _drop_stale(cursor, names: set[str]) -> None:
    """Templates of earlier migrations; one still being copied by another run stays."""
    for stale in names:
        try:
            cursor.execute(f'DROP DATABASE IF EXISTS "{stale}"')
        except DatabaseError:  # in use: the next build tries again
            continue
