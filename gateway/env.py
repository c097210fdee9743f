"""Read settings from the environment, failing loudly on a missing or malformed value.

Every helper accepts ``NAME_FILE`` instead of ``NAME``: the value is then read from that file,
which is how Docker and systemd hand secrets to a process.
"""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

_env = environ.Env()
_MISSING = object()


def _raw(name: str, default=_MISSING) -> str:
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        if name in os.environ:
            raise ImproperlyConfigured(f"Set {name} or {name}_FILE, not both.")
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name} cannot be read: {exc}") from exc
    if name in os.environ:
        return os.environ[name]
    if default is _MISSING:
        raise ImproperlyConfigured(f"Set the {name} environment variable (or {name}_FILE).")
    return default


def string(name: str, default=_MISSING) -> str:
    value = _raw(name, default)
    if value is not default and not value:
        raise ImproperlyConfigured(f"{name} is set but empty.")
    return value


def boolean(name: str, default: bool) -> bool:
    value = _raw(name, None)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true or false).")


def integer(name: str, default: int) -> int:
    value = _raw(name, None)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from None


def strings(name: str, default: list[str]) -> list[str]:
    value = _raw(name, None)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def database(name: str, default: str) -> dict:
    value = _raw(name, default)
    try:
        config = _env.db_url_config(value)
    except Exception as exc:
        raise ImproperlyConfigured(f"{name}={value!r} is not a database URL: {exc}") from exc
    if not config.get("ENGINE"):
        raise ImproperlyConfigured(f"{name}={value!r} names an unknown database scheme.")
    return config


def load_file(path: Path) -> None:
    """Read ``NAME=value`` lines into the environment without overriding what is set."""
    if path.is_file():
        environ.Env.read_env(str(path), overwrite=False)
