"""Mailbox passwords are kept as {BLF-CRYPT} hashes that the real Dovecot verifies."""

import shutil
import subprocess

import pytest
from django.core.exceptions import ValidationError

from gateway import passwords


def doveadm_verifies(password: str, hashed: str) -> bool:
    result = subprocess.run(
        ["doveadm", "pw", "-t", hashed, "-p", password], capture_output=True, text=True
    )
    return result.returncode == 0 and "(verified)" in result.stdout


@pytest.mark.skipif(not shutil.which("doveadm"), reason="bin/bootstrap installs dovecot-core")
@pytest.mark.parametrize("password", ["correct horse battery", "Grüße aus Köln 2026", "x" * 72])
def test_it_stores_a_hash_that_doveadm_verifies(password):
    hashed = passwords.hash_password(password)
    assert hashed.startswith("{BLF-CRYPT}$2b$")
    assert doveadm_verifies(password, hashed)
    assert not doveadm_verifies("!" + password, hashed)


@pytest.mark.skipif(not shutil.which("doveadm"), reason="bin/bootstrap installs dovecot-core")
def test_it_refuses_long_passwords_because_dovecot_ignores_byte_73_on():
    hashed = passwords.hash_password("x" * 72)
    assert doveadm_verifies("x" * 72 + "anything", hashed)


def test_it_refuses_a_password_past_bcrypts_72_bytes():
    with pytest.raises(ValidationError, match="at most 72 bytes"):
        passwords.hash_password("ü" * 37)  # 74 bytes, 37 characters


def test_it_refuses_a_short_password():
    with pytest.raises(ValidationError, match="at least 10"):
        passwords.hash_password("short")


def test_it_checks_a_password_against_its_hash():
    hashed = passwords.hash_password("correct horse battery")
    assert passwords.check_password("correct horse battery", hashed)
    assert not passwords.check_password("wrong horse battery", hashed)
