"""Encryption of secrets at rest with key rotation.

``MAILGATE_ENCRYPTION_KEYS`` holds one or more Fernet keys: the first encrypts, every key
decrypts, so a new key is put first, ``manage.py rotate_secrets`` re-encrypts every stored secret
with it, and the old key can then be dropped.
"""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured(
            "Set MAILGATE_ENCRYPTION_KEYS (or MAILGATE_ENCRYPTION_KEYS_FILE) to one or more Fernet "
            "keys; make one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        )
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"MAILGATE_ENCRYPTION_KEYS holds a malformed key: {exc}"
        ) from None


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.MAILGATE_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode("ascii")).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with MAILGATE_ENCRYPTION_KEYS: "
            "was the key that encrypted it removed?"
        ) from None


def rotate(token: str) -> str:
    return fernet().rotate(token.encode("ascii")).decode("ascii")
