import re

from cryptography import x509
from django.core.exceptions import ValidationError

from gateway.validators import reject_control_characters

_ABSOLUTE_PATH = re.compile(r"^/[A-Za-z0-9._@+/-]*[A-Za-z0-9._@+-]$")
_UNIX_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_INTERFACE = re.compile(r"^[A-Za-z0-9_=+.-]{1,15}$")
_HOST_KEY = re.compile(
    r"^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,3}$"
)
_PRIVATE_KEY = re.compile(
    r"^-----BEGIN (OPENSSH|RSA|EC) PRIVATE KEY-----\n[A-Za-z0-9+/=\n:,-]+?\n"
    r"-----END \1 PRIVATE KEY-----\n?$"
)
_CERT_BEGIN = "-----BEGIN CERTIFICATE-----"
_CERT_END = "-----END CERTIFICATE-----"
_HOSTNAME_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def validate_absolute_path(value: str) -> None:
    reject_control_characters(value)
    if not _ABSOLUTE_PATH.match(value) or "/../" in f"{value}/":
        raise ValidationError(
            "%(value)s is not an absolute file path such as /etc/ssl/mail.pem (letters, digits "
            "and ._-@+/ only).",
            code="invalid_path",
            params={"value": value},
        )


def validate_unix_user(value: str) -> None:
    if not _UNIX_USER.match(value):
        raise ValidationError(
            "%(value)s is not a Unix user name (lowercase letters, digits, _ and -).",
            code="invalid_user",
            params={"value": value},
        )


def validate_host_name(value: str) -> None:
    if not _HOSTNAME_LABEL.match(value):
        raise ValidationError(
            "A host name is one lowercase label such as vps or home (letters, digits, -).",
            code="invalid_host_name",
        )


def validate_interface(value: str) -> None:
    if not _INTERFACE.match(value):
        raise ValidationError(
            "An interface name has 1-15 letters, digits or _=+.- (e.g. wg0).",
            code="invalid_interface",
        )


def validate_host_key(value: str) -> None:
    if not _HOST_KEY.match(value):
        raise ValidationError(
            "A host key is one line such as 'ssh-ed25519 AAAA…' (without a host name or comment).",
            code="invalid_host_key",
        )


def validate_ssh_private_key(value: str) -> None:
    if not _PRIVATE_KEY.match(value.replace("\r\n", "\n").strip() + "\n"):
        raise ValidationError(
            "Paste an unencrypted private key in OpenSSH or PEM form, from its "
            "'-----BEGIN … PRIVATE KEY-----' line to its '-----END … PRIVATE KEY-----' line.",
            code="invalid_private_key",
        )


def validate_pem_certificate(value: str) -> None:
    text = value.replace("\r\n", "\n").strip()
    try:
        if not (text.startswith(_CERT_BEGIN) and text.endswith(_CERT_END)):
            raise ValueError("text around the certificate")
        x509.load_pem_x509_certificate(text.encode())
    except ValueError:
        raise ValidationError(
            "Paste a certificate in PEM form ('-----BEGIN CERTIFICATE-----' …).",
            code="invalid_certificate",
        ) from None
