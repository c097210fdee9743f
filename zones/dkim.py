"""DKIM keys: RSA-2048 generated with ``cryptography``, the private key as PKCS#8 PEM (what
OpenDKIM, rspamd and dkimpy read) and the public key as the base64 DER of the ``p=`` tag."""

import base64
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_BITS = 2048
PUBLIC_EXPONENT = 65537


@dataclass(frozen=True)
class KeyPair:
    private_pem: str
    public_base64: str


def generate() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return KeyPair(private_pem, public_base64(key.public_key()))


def public_base64(public_key) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def public_of(private_pem: str) -> str:
    """The ``p=`` value of a stored private key (to check that a row's halves belong together)."""
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return public_base64(key.public_key())
