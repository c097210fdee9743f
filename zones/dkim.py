"""DKIM keys: RSA-2048 generated with ``cryptography``, the private key as PKCS#8 PEM (what
OpenDKIM, rspamd and dkimpy read) and the public key as the base64 DER of the ``p=`` tag."""

import base64
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.bundle import RenderError

KEY_BITS = 2048
PUBLIC_EXPONENT = 65537


@dataclass(frozen=True)
class KeyPair:
    private_pem: str
    public_base64: str


def generate() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS)
    return KeyPair(_pkcs8(key).decode(), public_base64(key.public_key()))


def _pkcs8(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_base64(public_key) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def signing_pem(key) -> bytes:
    """The bytes of a DkimKey's key file for a signer: the stored key, parsed and written anew
    (so nothing but the key can reach the file), once it is known to be the half of the record
    it publishes. A broken key would make the signer defer every message of the domain, a
    mismatched one would sign mail that never verifies."""
    try:
        private = serialization.load_pem_private_key(key.private_key.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        private = None
    if not isinstance(private, rsa.RSAPrivateKey) or (
        public_base64(private.public_key()) != key.public_key
    ):
        raise RenderError(
            f"The DKIM key {key} is damaged or does not match its published record: "
            "generate a new key and switch to it."
        )
    return _pkcs8(private)


def public_of(private_pem: str) -> str:
    """The ``p=`` value of a stored private key (to check that a row's halves belong together)."""
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return public_base64(key.public_key())
