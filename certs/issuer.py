"""Mailgate as an ACME client (RFC 8555), through certbot's ``acme`` library and ``josepy``.

Each name of an order is answered with one challenge, chosen by where its zone is:

- **DNS-01** (RFC 8555 §8.4) where Mailgate pushes the zone: the TXT record
  ``_acme-challenge.<name>`` is written through Mailgate's own DNS push (RFC 2136 or a
  provider's API, ``zones.push``);
- **HTTP-01** (§8.3) elsewhere, through the all-HAProxy gateway the public names point at: the
  key authorization is written over SSH into the gateway's challenge folder, which its nginx
  serves at ``http://<name>/.well-known/acme-challenge/<token>`` (``hosts.render.nginx``). A
  Traefik gateway owns port 80 itself, so there the name needs the DNS push.

Then the CA is told to look, and the records and files are withdrawn again whatever happened.
The private key is made here and never leaves Mailgate except in the host's bundle; only a CSR
goes to the CA. Nothing here logs a key or puts one into a message.
"""

import datetime
import logging
import re
from dataclasses import dataclass

import josepy as jose
import requests
from acme import challenges, client, crypto_util, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.writers import shell_quote
from hosts.choices import GatewayProxy
from hosts.render.context import ACME_CHALLENGE_ROOT, BASE64URL
from hosts.transport import Session, TransportError
from zones import push
from zones.records import Record, zone_of

logger = logging.getLogger(__name__)

USER_AGENT = "mailgate (+https://github.com/mailgate)"
CHALLENGE_TTL = 60
ORDER_TIMEOUT = datetime.timedelta(seconds=90)
CHALLENGE_PURPOSE = "ACME DNS-01 challenge (RFC 8555 §8.4), removed after validation"
_TOKEN = re.compile(BASE64URL)
# Written beside the target and renamed over it, so nginx never serves half a file; readable
# by nginx's workers (the key authorization is no secret: the CA reads it over plain HTTP).
_WRITE_CHALLENGE = (
    "umask 022 && mkdir -p {folder} && tmp=$(mktemp {folder}/.new.XXXXXX) && "
    '{{ cat > "$tmp" && chmod 0644 "$tmp" && mv -f "$tmp" {path} || {{ rm -f "$tmp"; exit 1; }}; }}'
)


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

    def zone(self, name: str) -> str | None:
        return zone_of(self.facts, name)

    def pushes(self, name: str) -> bool:
        """Whether Mailgate pushes the zone ``name`` lies in."""
        return self.zone(name) in self.targets

    def publish(self, name: str, values: list[str]) -> None:
        self._write(Record(name, "TXT", tuple(values), CHALLENGE_TTL, CHALLENGE_PURPOSE))

    def withdraw(self, name: str) -> None:
        self._write(Record(name, "TXT", (), CHALLENGE_TTL, CHALLENGE_PURPOSE))

    def _write(self, record: Record) -> None:
        zone = self.zone(record.name)
        backend = push.backend_for(self.targets[zone])
        plan = push.make_plan(zone, [record], backend)
        if plan.changes:
            backend.apply(list(plan.changes))


class GatewayChallenges:
    """HTTP-01 key authorizations written over SSH into the challenge folder of the all-HAProxy
    gateway, whose nginx serves them: one connection for the whole order, and ``withdraw``
    removes every file it may have written."""

    def __init__(self, host):
        self.host = host
        self._session: Session | None = None
        self._paths: list[str] = []

    def publish(self, token: str, key_authorization: str) -> None:
        if not _TOKEN.fullmatch(token):  # RFC 8555 §8.3: base64url only
            raise IssueError(f"The CA sent an HTTP-01 token that is not base64url: {token!r}")
        path = f"{ACME_CHALLENGE_ROOT}/{token}"
        folder = shell_quote(ACME_CHALLENGE_ROOT)
        command = _WRITE_CHALLENGE.format(folder=folder, path=shell_quote(path))
        session = self._connected()
        self._paths.append(path)
        self._run(session, command, f"write {path}", stdin=key_authorization.encode())

    def withdraw(self) -> None:
        """Remove the files and hang up; a failure is only logged: the files hold no secret."""
        if self._session is None:
            return
        try:
            if self._paths:
                paths = " ".join(shell_quote(path) for path in self._paths)
                self._run(self._session, f"rm -f {paths}", "remove the challenge files")
        except IssueError as exc:
            logger.warning("HTTP-01 challenges left on %s: %s", self.host, exc)
        finally:
            self._session.close()
            self._session, self._paths = None, []

    def _connected(self) -> Session:
        if self._session is None:
            try:
                self._session = Session(self.host)
            except TransportError as exc:
                raise IssueError(f"Could not reach the gateway for HTTP-01: {exc}") from None
        return self._session

    def _run(self, session: Session, command: str, what: str, stdin: bytes = b"") -> None:
        try:
            result = session.run(command, stdin=stdin)
        except TransportError as exc:
            raise IssueError(f"Lost the gateway while answering HTTP-01: {exc}") from None
        if not result.ok:
            raise IssueError(f"Could not {what} on {self.host}: {result.output.strip()}")


class Challenges:
    """One challenge per name: DNS-01 where Mailgate pushes the name's zone, else HTTP-01
    through the all-HAProxy ``gateway`` the public names point at. Remembers what it wrote, so
    that ``withdraw`` removes exactly that."""

    def __init__(self, dns: PushChallenges, gateway):
        self.dns, self.gateway = dns, gateway
        self.web = (
            GatewayChallenges(gateway)
            if gateway is not None and gateway.gateway_proxy == GatewayProxy.HAPROXY
            else None
        )
        self._records: list[str] = []

    def publish(self, authorizations, account_key) -> list[messages.ChallengeBody]:
        """Write every authorization's record or file; return the challenges to answer."""
        values: dict[str, list[str]] = {}
        answers = []
        for authorization in authorizations:
            name = authorization.body.identifier.value
            if self.dns.pushes(name):
                challenge = _offered(authorization, challenges.DNS01)
                record = challenge.chall.validation_domain_name(name)
                values.setdefault(record, []).append(challenge.chall.validation(account_key))
            else:
                challenge = _offered(authorization, challenges.HTTP01)
                self._write_file(name, challenge, account_key)
            answers.append(challenge)
        for name, texts in values.items():
            self._records.append(name)
            try:
                self.dns.publish(name, texts)
            except push.PushError as exc:
                raise IssueError(f"The DNS-01 record {name} could not be written: {exc}") from None
        return answers

    def withdraw(self) -> None:
        try:
            for name in self._records:
                self.dns.withdraw(name)
        finally:
            if self.web is not None:
                self.web.withdraw()

    def _write_file(self, name: str, challenge, account_key) -> None:
        if self.web is None:
            raise IssueError(self._no_web(name))
        self.web.publish(challenge.chall.encode("token"), challenge.chall.validation(account_key))

    def _no_web(self, name: str) -> str:
        zone = self.dns.zone(name) or "its domain"
        if self.gateway is None:
            why = "and there is no gateway to answer HTTP-01 for it"
        else:
            why = (
                f"and the gateway {self.gateway} runs Traefik, which answers HTTP-01 on port 80 "
                "itself, so Mailgate cannot answer it there"
            )
        return (
            f"{name} lies in no zone Mailgate pushes to, {why}: set up the DNS push of {zone} "
            "(DNS → push) so that Mailgate can answer DNS-01."
        )


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

    def issue(self, names: list[str], private_key: str, answering: Challenges) -> Issued:
        csr = crypto_util.make_csr(private_key.encode(), names)
        acme_client = self.client
        with _as_issue_error("order the certificate"):
            order = acme_client.new_order(csr)
        # An authorization the CA still holds as valid is not answered again.
        pending = [
            authorization
            for authorization in order.authorizations
            if authorization.body.status != messages.STATUS_VALID
        ]
        try:
            answers = answering.publish(pending, self.key)
            with _as_issue_error("answer the challenges"):
                for challenge in answers:
                    acme_client.answer_challenge(challenge, challenge.chall.response(self.key))
                deadline = datetime.datetime.now() + ORDER_TIMEOUT
                order = acme_client.poll_and_finalize(order, deadline=deadline)
        finally:
            answering.withdraw()
        return Issued(
            fullchain=order.fullchain_pem, private_key=private_key, **describe(order.fullchain_pem)
        )


def _offered(authorization, kind) -> messages.ChallengeBody:
    for challenge in authorization.body.challenges:
        if isinstance(challenge.chall, kind):
            return challenge
    raise IssueError(
        f"The CA offers no {kind.typ.upper()} challenge for {authorization.body.identifier.value}."
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
