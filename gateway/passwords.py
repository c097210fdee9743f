"""Mailbox password hashes that Dovecot verifies and Mailu imports: ``{BLF-CRYPT}`` (bcrypt);
and device passwords, made here, in the one scheme that both Dovecot and Mailu's application
tokens verify: ``{SHA256-CRYPT}`` (docs/mailbox-features.md)."""

import secrets

import bcrypt
from django.conf import settings
from django.core.exceptions import ValidationError
from passlib.hash import sha256_crypt

from gateway.validators import reject_control_characters

SCHEME = "{BLF-CRYPT}"
DEVICE_SCHEME = "{SHA256-CRYPT}"
# Mailu takes a password of 32 lowercase hexadecimal digits for an application token
# (mailu.utils.is_app_token): 128 random bits, which no hash's cost needs to slow down.
DEVICE_PASSWORD_BYTES = 16
# bcrypt silently ignores everything past 72 bytes: refuse such passwords instead of weakening them.
MAX_BYTES = 72
MIN_LENGTH = 10


def validate_mailbox_password(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise ValidationError(
            "A mailbox password needs at least %(min)d characters.",
            code="password_too_short",
            params={"min": MIN_LENGTH},
        )
    if len(password.encode()) > MAX_BYTES:
        raise ValidationError(
            "A mailbox password can be at most %(max)d bytes long (bcrypt ignores the rest); "
            "non-ASCII characters count as two to four bytes.",
            code="password_too_long",
            params={"max": MAX_BYTES},
        )
    # IMAP and SMTP AUTH cannot carry CR, LF or NUL in a password; refuse what no client can send.
    reject_control_characters(password)


def hash_password(password: str) -> str:
    validate_mailbox_password(password)
    digest = bcrypt.hashpw(
        password.encode(), bcrypt.gensalt(rounds=settings.MAILGATE_BCRYPT_ROUNDS)
    )
    return SCHEME + digest.decode("ascii")


def check_password(password: str, hashed: str) -> bool:
    if not hashed.startswith(SCHEME):
        return False
    digest = hashed.removeprefix(SCHEME).encode("ascii")
    return bcrypt.checkpw(password.encode()[:MAX_BYTES], digest)


def new_device_password() -> str:
    return secrets.token_hex(DEVICE_PASSWORD_BYTES)


def hash_device_password(password: str) -> str:
    return DEVICE_SCHEME + sha256_crypt.using(rounds=5000).hash(password)
