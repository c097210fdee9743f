"""Pushing a zone's records: a plan first (what is added, changed, deleted), then the update.

Mailgate only ever touches what it manages: for each record it expects (a name and a type) it
compares the values it owns there and changes only those. Names and types it does not expect are
never read into the plan, so they cannot be deleted; in an RRset it shares (the apex TXT, where
SPF lives beside site verifications) it removes only its own values (``Record.owns``).

Two backends: RFC 2136 dynamic updates signed with TSIG, sent to the primary server as one
message (the server applies it all or nothing), and a DNS provider's API through the one seam in
``zones.providers``.
"""

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.query
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import dns.update

from zones import providers
from zones.choices import PushKind
from zones.rdata import Value, key_of, make, parse
from zones.records import Record
from zones.resolver import Answer, ask_server

PARALLEL = 8
UPDATE_TIMEOUT = 15.0


class PushError(Exception):
    """The zone could not be read or updated; the message says why."""


@dataclass(frozen=True)
class Change:
    action: str  # add, change or delete
    name: str
    rtype: str
    ttl: int
    purpose: str
    old: tuple[Value, ...]  # values Mailgate removes (only its own)
    new: tuple[str, ...]  # values Mailgate writes

    @property
    def removes(self) -> list[str]:
        return [value.key for value in self.old]


@dataclass(frozen=True)
class Plan:
    zone: str
    changes: tuple[Change, ...]
    unchanged: int
    manual: tuple[Record, ...] = ()  # records this backend cannot write (added by hand)

    @property
    def digest(self) -> str:
        """Names this exact plan, so that a push applies the plan that was shown."""
        text = repr([(c.action, c.name, c.rtype, c.ttl, c.removes, c.new) for c in self.changes])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- the plan ------------------------------------------------------------------------------------


def diff(records: list[Record], current: dict, key=key_of) -> tuple[list[Change], int]:
    """Changes that make ``current`` (values per (name, type)) hold what ``records`` expect."""
    changes, unchanged = [], 0
    for record in records:
        change = _change(record, current.get(record.key) or Answer(), key)
        if change is None:
            unchanged += 1
        else:
            changes.append(change)
    return changes, unchanged


def _change(record: Record, present: Answer, key) -> Change | None:
    owned = [value for value in present.values if record.owned(value.key)]
    wanted = {key(record.rtype, value): value for value in record.values}
    owned_keys = {value.key for value in owned}
    stale = tuple(value for value in owned if value.key not in wanted)
    new = tuple(value for value_key, value in wanted.items() if value_key not in owned_keys)
    if not stale and not new:
        # A new TTL rewrites the whole RRset, so only where Mailgate owns all of it.
        if owned and not record.owns and present.ttl and present.ttl != record.ttl:
            return _make(record, "change", tuple(owned), record.values)
        return None
    action = "add" if not stale else "delete" if not new else "change"
    return _make(record, action, stale, new)


def _make(record: Record, action: str, old, new) -> Change:
    return Change(action, record.name, record.rtype, record.ttl, record.purpose, old, tuple(new))


def make_plan(zone: str, records: list[Record], backend) -> Plan:
    pushable = [record for record in records if backend.can_write(record)]
    manual = tuple(record for record in records if not backend.can_write(record))
    changes, unchanged = diff(pushable, backend.current(pushable), backend.key)
    return Plan(zone, tuple(changes), unchanged, manual)


def backend_for(target):
    return Rfc2136(target) if target.kind == PushKind.RFC2136 else Provider(target)


# --- RFC 2136 ------------------------------------------------------------------------------------


class Rfc2136:
    """The zone's primary server: read with plain queries, written with a TSIG-signed update."""

    key = staticmethod(key_of)

    def __init__(self, target):
        self.zone = target.zone
        self.server, self.port = target.server, target.port
        self.key_name, self.algorithm = target.tsig_key_name, target.tsig_algorithm
        self.secret = target.tsig_secret

    def can_write(self, record: Record) -> bool:
        return True

    def current(self, records: list[Record]) -> dict:
        def ask(record: Record) -> Answer:
            return ask_server(self.server, self.port, record.name, record.rtype)

        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            answers = list(pool.map(ask, records))
        for answer in answers:
            if answer.error:
                raise PushError(f"Cannot read the zone: {answer.error}.")
        return {record.key: answer for record, answer in zip(records, answers, strict=True)}

    def apply(self, changes: list[Change]) -> None:
        update = dns.update.UpdateMessage(
            self.zone,
            keyring=dns.tsigkeyring.from_text({self.key_name: self.secret}),
            keyname=self.key_name,
            keyalgorithm=dns.name.from_text(self.algorithm),
        )
        for change in changes:
            name = dns.name.from_text(f"{change.name}.")
            for value in change.old:
                update.delete(name, parse(change.rtype, value.text))
            for value in change.new:
                update.add(name, change.ttl, make(change.rtype, value))
        self._send(update)

    def _send(self, update: dns.update.UpdateMessage) -> None:
        where = f"{self.server}:{self.port}"
        try:
            response = dns.query.tcp(update, self.server, port=self.port, timeout=UPDATE_TIMEOUT)
        except dns.tsig.PeerError as exc:
            raise PushError(
                f"{where} refused the TSIG key {self.key_name!r} ({exc}): check its name, "
                "algorithm and secret against the server's key statement."
            ) from None
        except (dns.exception.DNSException, OSError, EOFError) as exc:  # EOF: closed on us
            raise PushError(
                f"{where} did not take the update: {exc or type(exc).__name__}"
            ) from None
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            raise PushError(
                f"{where} answered {dns.rcode.to_text(rcode)}: "
                + _RCODE_HINTS.get(rcode, "nothing was changed.")
            )


_RCODE_HINTS = {
    dns.rcode.REFUSED: "the server does not allow this key to update the zone (allow-update / "
    "update-policy); nothing was changed.",
    dns.rcode.NOTAUTH: "the server is not authoritative for the zone, or the key is unknown; "
    "nothing was changed.",
    dns.rcode.NOTZONE: "a name lies outside the zone; nothing was changed.",
}


# --- a provider's API ----------------------------------------------------------------------------


class Provider:
    """A zone at a DNS provider, through ``providers.ProviderZone`` (the seam)."""

    def __init__(self, target):
        self.api = providers.ProviderZone(
            provider=target.provider,
            zone=target.zone,
            token=target.provider_token,
            username=target.provider_username,
        )

    @staticmethod
    def key(rtype: str, value: str) -> str:
        """Providers give an MX's target without its priority: compare targets only."""
        if rtype == "MX":
            return value.split()[-1].rstrip(".").lower() + "."
        return key_of(rtype, value)

    def can_write(self, record: Record) -> bool:
        return record.rtype in providers.PUSHABLE_TYPES

    def current(self, records: list[Record]) -> dict:
        wanted = {record.key for record in records}
        try:
            rows = self.api.list_records()
        except Exception as exc:  # a provider library may raise anything: report it, whole
            raise PushError(f"The provider's API could not list the zone: {exc}") from None
        current: dict[tuple[str, str], list[Value]] = {}
        for row in rows:
            if (row.name, row.rtype) in wanted:
                current.setdefault((row.name, row.rtype), []).append(self._value(row))
        return {key: Answer(values=tuple(values)) for key, values in current.items()}

    def _value(self, row: providers.ProviderRecord) -> Value:
        content = row.content
        if row.rtype == "TXT" and len(content) > 1 and content[0] == content[-1] == '"':
            content = content[1:-1]
        key = self.key(row.rtype, content) if row.rtype != "TXT" else content
        return Value(key, row.content)

    def apply(self, changes: list[Change]) -> None:
        try:
            for change in changes:
                for value in change.old:
                    self.api.delete(providers.ProviderRecord(change.rtype, change.name, value.text))
                for value in change.new:
                    self.api.create(_provider_record(change, value))
        except PushError:
            raise
        except Exception as exc:  # as above: the provider's own error text is the useful part
            raise PushError(f"The provider's API refused a change: {exc}") from None


def _provider_record(change: Change, value: str) -> providers.ProviderRecord:
    if change.rtype == "MX":
        priority, target = value.split()
        return providers.ProviderRecord(
            "MX", change.name, target.rstrip("."), change.ttl, int(priority)
        )
    content = value.rstrip(".") if change.rtype == "CNAME" else value
    return providers.ProviderRecord(change.rtype, change.name, content, change.ttl)
