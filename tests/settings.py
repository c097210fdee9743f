"""Production settings, with static files served from the source tree (no collectstatic)."""

from gateway.settings import *  # noqa: F403
from gateway.settings import STORAGES

STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# Panel accounts only: a fast hasher keeps fixtures quick (mailbox hashes stay real bcrypt).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# One cache per test process, emptied before each test (tests/conftest.py): a Redis cache would
# share the status check's cooldown between tests and with other runs.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Changes queue no deployments by themselves, except in the tests of convergence
# (tests/test_converge_worker.py): a task queued by one test would run in a later test's worker.
MAILGATE_CONVERGE = False
