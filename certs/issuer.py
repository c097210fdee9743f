"""Mailgate as an ACME client (RFC 8555), through certbot's ``acme`` library and ``josepy``.

An order for a certificate's names is answered with DNS-01 challenges only (RFC 8555 §8.4):
the TXT record ``_acme-challenge.<name>`` is written through Mailgate's own DNS push (RFC 2136
or a provider's API, ``zones.push``), the CA is told to look, and the records are withdrawn
again whatever happened. The private key is made here and never leaves Mailgate except in the
host's bundle; only a CSR goes to the CA. Nothing here logs a key or puts one into a message.
"""

import datetime
from dataclasses import dataclass

import josepy as jose
import requests
from acme import challenges, client, crypto_util, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from zones import push
from zones.records import Record, zone_of

USER_AGENT = "mailgate (+https://github.com/mailgate)"
CHALLENGE_TTL = 60
ORDER_TIMEOUT = datetime.timedelta(seconds=90)
CHALLENGE_PURPOSE = "ACME DNS-01 challenge (RFC 8555 §8.4), removed after validation"


class IssueError(Exception):
    """The certificate could not be issued; the message says why (and never holds a key)."""


@dataclass(frozen=True)
class Issued:
    """A certificate as the CA returned it, with the key it certifies and what it says."""

    fullchain: str
    private_key: str
    serial: str
    issuer: str
    not_before: datetime.datetime
    not_after: datetime.datetime


def new_account_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _pem(key)


def new_private_key() -> str:
    """The certificate's key: ECDSA P-256, which every client of SMTP, IMAP and HTTPS takes."""
    return _pem(ec.generate_private_key(ec.SECP256R1()))


def _pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def describe(fullchain: str) -> dict:
    """The first certificate's serial, issuer and validity."""
    leaf = x509.load_pem_x509_certificate(fullchain.encode())
    return {
        "serial": f"{leaf.serial_number:x}",
        "issuer": leaf.issuer.rfc4514_string(),
        "not_before": leaf.not_valid_before_utc,
        "not_after": leaf.not_valid_after_utc,
    }


class PushChallenges:
    """DNS-01 records written through the push target of the zone each name lies in."""

    def __init__(self, facts, targets: dict):
        self.facts, self.targets = facts, targets  # targets: zone name → PushTarget

    def publish(self, name: str, values: list[str]) -> None:
        self._write(Record(name, "TXT", tuple(values), CHALLENGE_TTL, CHALLENGE_PURPOSE))

    def withdraw(self, name: str) -> None:
        self._write(Record(name, "TXT", (), CHALLENGE_TTL, CHALLENGE_PURPOSE))

    def _write(self, record: Record) -> None:
        zone = zone_of(self.facts, record.name)
        target = self.targets.get(zone)
        if target is None:
            raise IssueError(
                f"{record.name} lies in no zone Mailgate pushes to: set up the DNS push of "
                f"{zone or 'its domain'} (DNS → push) so that Mailgate can answer DNS-01."
            )
        backend = push.backend_for(target)
        plan = push.make_plan(zone, [record], backend)
        if plan.changes:
            backend.apply(list(plan.changes))


class Acme:
    """One ACME server, as one account."""

    def __init__(self, *, directory: str, account_key: str, account_uri: str = "", verify=True):
        key = serialization.load_pem_private_key(account_key.encode(), password=None)
        self.key = jose.JWKRSA(key=key)
        account = (
            messages.RegistrationResource(uri=account_uri, body=messages.Registration())
            if account_uri
            else None
        )
        self.net = client.ClientNetwork(
            self.key, account=account, user_agent=USER_AGENT, verify_ssl=verify
        )
        self.directory_url = directory
        self._client: client.ClientV2 | None = None

    @property
    def client(self) -> client.ClientV2:
        if self._client is None:
            with _as_issue_error("read the directory"):
                directory = client.ClientV2.get_directory(self.directory_url, self.net)
            self._client = client.ClientV2(directory, self.net)
        return self._client

    def register(self, email: str = "") -> str:
        """Register the account (or find it again by its key); returns its URL."""
        registration = messages.NewRegistration.from_data(
            email=email or None, terms_of_service_agreed=True
        )
        acme_client = self.client
        with _as_issue_error("register the account"):
            try:
                resource = acme_client.new_account(registration)
            except errors.ConflictError as exc:  # this key has an account already
                resource = messages.RegistrationResource(
                    uri=exc.location, body=messages.Registration()
                )
                self.net.account = resource
        return resource.uri

    def issue(self, names: list[str], private_key: str, dns: PushChallenges) -> Issued:
        csr = crypto_util.make_csr(private_key.encode(), names)
        acme_client = self.client
        with _as_issue_error("order the certificate"):
            order = acme_client.new_order(csr)
        published = []
        try:
            answers = self._publish(order, dns, published)
            with _as_issue_error("answer the challenges"):
                for challenge in answers:
                    acme_client.answer_challenge(challenge, challenge.chall.response(self.key))
                deadline = datetime.datetime.now() + ORDER_TIMEOUT
                order = acme_client.poll_and_finalize(order, deadline=deadline)
        finally:
            for name in published:
                dns.withdraw(name)
        return Issued(
            fullchain=order.fullchain_pem, private_key=private_key, **describe(order.fullchain_pem)
        )

    def _publish(self, order, dns: PushChallenges, published: list[str]) -> list:
        """Write every pending authorization's DNS-01 record; return the challenges to answer."""
        values: dict[str, list[str]] = {}
        answers = []
        for authorization in order.authorizations:
            if authorization.body.status == messages.STATUS_VALID:
                continue  # the CA still trusts an earlier validation of this name
            challenge = _dns01(authorization)
            name = challenge.chall.validation_domain_name(authorization.body.identifier.value)
            values.setdefault(name, []).append(challenge.chall.validation(self.key))
            answers.append(challenge)
        for name, texts in values.items():
            published.append(name)
            try:
                dns.publish(name, texts)
            except push.PushError as exc:
                raise IssueError(f"The DNS-01 record {name} could not be written: {exc}") from None
        return answers


def _dns01(authorization) -> messages.ChallengeBody:
    for challenge in authorization.body.challenges:
        if isinstance(challenge.chall, challenges.DNS01):
            return challenge
    raise IssueError(
        f"The CA offers no DNS-01 challenge for {authorization.body.identifier.value}."
    )


class _as_issue_error:
    """Turn what the acme library, requests and the push raise into an ``IssueError``."""

    def __init__(self, step: str):
        self.step = step

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, traceback):
        if exc is None or isinstance(exc, IssueError):
            return False
        if isinstance(exc, errors.ValidationError):
            raise IssueError(f"The CA refused the challenges: {_failures(exc)}") from None
        if isinstance(exc, errors.TimeoutError):
            raise IssueError("The CA did not finish the order in time.") from None
        if isinstance(exc, messages.Error | errors.Error | requests.RequestException):
            raise IssueError(f"Could not {self.step}: {exc}") from None
        if isinstance(exc, push.PushError):
            raise IssueError(f"Could not {self.step}: {exc}") from None
        return False


def _failures(exc: errors.ValidationError) -> str:
    parts = []
    for authorization in exc.failed_authzrs:
        name = authorization.body.identifier.value
        details = [
            str(challenge.error.detail or challenge.error.typ)
            for challenge in authorization.body.challenges
            if challenge.error is not None
        ]
        parts.append(f"{name}: {'; '.join(details) or 'invalid'}")
    return "; ".join(parts)
