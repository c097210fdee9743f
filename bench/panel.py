"""The panel each benchmark runs in this process: Django on a SQLite database in a folder of
its own (removed by the benchmark when it ends), with the settings a benchmark needs and
whatever it adds; a benchmark calls :func:`setup` before it imports the project."""

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup(**environment: str) -> Path:
    """Start Django with ``environment`` added to the benchmark's settings; return the
    benchmark's folder (its database, data and logs)."""
    work = Path(tempfile.mkdtemp(prefix="mailgate-bench-"))
    sys.path.insert(0, str(ROOT))
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "gateway.settings",
            "MAILGATE_DATA_DIR": str(work),
            "DATABASE_URL": f"sqlite:///{work / 'bench.sqlite3'}",
            "SECRET_KEY": "bench",
            "MAILGATE_ENCRYPTION_KEYS": "qp4DmdSSnhBZJ4OA6cXx7a4ZCkqmJV0S1eqhxO5S8tA=",
            **environment,
        }
    )
    import django

    django.setup()
    return work
