"""Settings come from the environment, fail loudly on a missing or malformed value, accept
NAME_FILE for secrets, and default to SQLite and the filesystem broker."""

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from gateway import env
from tests.shared import ROOT

KEY = "qp4DmdSSnhBZJ4OA6cXx7a4ZCkqmJV0S1eqhxO5S8tA="


def load_settings(tmp_path, **variables) -> subprocess.CompletedProcess:
    """Import the real settings in a fresh interpreter with exactly these variables."""
    environment = {
        "PATH": os.environ["PATH"],
        "MAILGATE_DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "gateway.settings",
        **variables,
    }
    code = (
        "import django; from django.conf import settings; django.setup(); "
        "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_BROKER_URL)"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )


def test_it_runs_on_sqlite_and_the_filesystem_broker_by_default(tmp_path):
    result = load_settings(tmp_path, SECRET_KEY="x", MAILGATE_ENCRYPTION_KEYS=KEY)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.sqlite3", "filesystem://"]


def test_it_switches_to_postgresql_and_redis(tmp_path):
    result = load_settings(
        tmp_path,
        SECRET_KEY="x",
        MAILGATE_ENCRYPTION_KEYS=KEY,
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/mailgate",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.postgresql", "redis://127.0.0.1:6379/0"]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({}, "Set the SECRET_KEY environment variable"),
        ({"SECRET_KEY": ""}, "SECRET_KEY is set but empty"),
        ({"SECRET_KEY": "x", "DEBUG": "perhaps"}, "DEBUG='perhaps' is not a boolean"),
        ({"SECRET_KEY": "x", "DATABASE_URL": "nonsense"}, "DATABASE_URL='nonsense'"),
        ({"SECRET_KEY": "x", "MAILGATE_BCRYPT_ROUNDS": "many"}, "is not an integer"),
        ({"SECRET_KEY_FILE": "/nonexistent/secret"}, "cannot be read"),
    ],
)
def test_it_fails_loudly_on_a_missing_or_malformed_value(tmp_path, variables, message):
    result = load_settings(tmp_path, **variables)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_it_reads_a_secret_from_a_file(tmp_path, monkeypatch):
    secret = tmp_path / "secret_key"
    secret.write_text("from-a-file\n")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("SECRET_KEY_FILE", str(secret))
    assert env.string("SECRET_KEY") == "from-a-file"
    monkeypatch.setenv("SECRET_KEY", "both")
    with pytest.raises(ImproperlyConfigured, match="not both"):
        env.string("SECRET_KEY")


def test_it_refuses_a_malformed_encryption_key(settings, db):
    from gateway import crypto

    settings.MAILGATE_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    with pytest.raises(ImproperlyConfigured, match="malformed key"):
        crypto.encrypt("x")
    settings.MAILGATE_ENCRYPTION_KEYS = []
    with pytest.raises(ImproperlyConfigured, match="MAILGATE_ENCRYPTION_KEYS"):
        crypto.encrypt("x")
