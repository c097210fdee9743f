"""Small helpers the tests share: a sweep over values (the first in the fast loop), the control
characters no field may carry, clients for the generic pages and the API, and a self-signed
certificate."""

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.urls import reverse
from rest_framework.test import APIClient

from gateway.models import ApiToken

CONTROL_CHARACTERS = ["\n", "\r", "\x00", "\x1b", "\u2028"]


def sweep(values: list, *, each=lambda value: pytest.param(value)) -> list:
    """Parameters for a sweep over ``values`` (one per field, say; ``each`` makes a value's
    parameters): the first runs in the fast loop, the rest are marked slow and run with the
    whole suite."""
    first, *rest = (each(value) for value in values)
    return [first, *(pytest.param(*p.values, id=p.id, marks=pytest.mark.slow) for p in rest)]


def page_url(model, page: str, *args) -> str:
    """The URL of one of a model's generic pages (``gateway.crud``): list, create, update or
    delete, named in the namespace of the model's app."""
    return reverse(f"{model._meta.app_label}:{model._meta.model_name}-{page}", args=args)


def client_for(token: str) -> APIClient:
    """An API client that sends ``token``."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def api_client_for(user) -> APIClient:
    _, token = ApiToken.issue(user=user, name="tests")
    return client_for(token)


def self_signed(name: str, *, valid_from: int = 0, valid_until: int = 1) -> tuple[str, str]:
    """A self-signed ECDSA certificate for ``name`` and its key (PEM), valid from
    ``valid_from`` to ``valid_until`` days from now (negative: in the past)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=valid_from))
        .not_valid_after(now + datetime.timedelta(days=valid_until))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), pem.decode()
