"""The digest a TLSA record publishes for the mail server's certificate (DANE, RFC 6698)."""

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization


def spki_sha256(certificate_pem: str) -> str:
    """TLSA 3 1 1 data: SHA-256 of the certificate's SubjectPublicKeyInfo, in hex."""
    certificate = x509.load_pem_x509_certificate(certificate_pem.strip().encode())
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()
