"""The DNS records a domain's mail needs, derived from the models.

Everything here is a pure function of a ``Facts`` snapshot (``zones.selectors.dns_facts`` loads
it), so the page, the zone file, the live checks and the push all agree on one list.

The split setup decides the values: the MX and the mail host's A/AAAA point at the **gateway's**
public addresses (the VPS receives the mail), SPF names the address mail **leaves** from (the
gateway's IPv4, where the egress rules translate outgoing SMTP; a smarthost relay adds
``a:<relay host>`` when it is a host name: which addresses a provider sends from behind an IP or
``127.0.0.1`` cannot be known, so nothing is guessed; add ``include:`` terms in the settings),
and every gateway address should have the mail server's HELO name as its PTR.
"""

from dataclasses import dataclass, field
from functools import cached_property

import dns.reversename

from gateway.writers import one_line
from hosts.render.context import HTTPS_PORT, MAIL_PORTS, SIEVE_PORT
from zones import mtasts
from zones.choices import MtaStsMode

SPF_PREFIX = "v=spf1"
TXT_CHUNK = 255  # bytes in one character-string of a TXT record (RFC 1035 §3.3)

# RFC 6186/8314 service records, as Mailu publishes them, for the ports the mail server serves
# through the gateway (hosts.render.context.SERVED_PORTS). Plain IMAP (143) and POP3 (110) are
# never forwarded, and Postfix + Dovecot serve no POP3, Sieve or autodiscover: "0 0 0 ." tells
# clients the service does not exist (RFC 6186 section 3.4), so they use what does.
SERVICES = (
    ("_submissions._tcp", 10, 465),
    ("_submission._tcp", 20, 587),
    ("_imaps._tcp", 10, 993),
    ("_pop3s._tcp", 10, 995),
    ("_imap._tcp", 0, 143),
    ("_pop3._tcp", 0, 110),
    ("_autodiscover._tcp", 10, HTTPS_PORT),
    ("_sieve._tcp", 10, SIEVE_PORT),
)
ALL_PORTS = frozenset({*MAIL_PORTS, HTTPS_PORT, SIEVE_PORT})


@dataclass(frozen=True)
class Record:
    """One expected RRset: a name, a type and the values Mailgate wants there.

    ``values`` are in presentation form, except TXT: the whole text, unquoted (it is split into
    255-byte strings only when written). No values means the record must be gone (a retired
    DKIM key). ``owns`` narrows what Mailgate manages in an RRset it shares: at the apex, TXT
    values starting with ``v=spf1`` are Mailgate's, a site verification beside them is not."""

    name: str  # absolute, lowercase, without the final dot
    rtype: str
    values: tuple[str, ...]
    ttl: int
    purpose: str
    owns: str = ""
    reverse: bool = False  # a PTR: set at the address's owner (the VPS provider), not in a zone

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.rtype)

    def owned(self, value: str) -> bool:
        return not self.owns or value.lower().startswith(self.owns)


@dataclass(frozen=True)
class DomainFacts:
    name: str
    mail_hostname: str
    settings: object  # a ZoneSettings, saved or the defaults
    dkim_keys: tuple = ()  # DkimKey rows, retired ones included


@dataclass(frozen=True)
class Facts:
    """What the records are made of: the domains and the hosts mail goes through."""

    domains: tuple[DomainFacts, ...]
    gateway_ipv4: str = ""
    gateway_ipv6: str = ""
    helo_name: str = ""  # the mail server's greeting (Postfix myhostname, Mailu's first HOSTNAMES)
    relay_host: str = ""  # the smarthost's host name, when mail leaves through one
    # What the mail server serves through the gateway; every port until one is known.
    offered_ports: frozenset[int] = ALL_PORTS
    problems: tuple[str, ...] = field(default=())

    def domain(self, name: str) -> DomainFacts:
        return self._by_name[name]

    @cached_property
    def _by_name(self) -> dict[str, DomainFacts]:
        return {entry.name: entry for entry in self.domains}

    @property
    def gateway_addresses(self) -> list[str]:
        return [address for address in (self.gateway_ipv4, self.gateway_ipv6) if address]


# --- one domain ----------------------------------------------------------------------------------


def expected_records(facts: Facts, domain: str) -> list[Record]:
    """Every record ``domain``'s mail needs, wherever it lives (its zone, the mail host's zone,
    a report address's zone, the reverse zone of the gateway)."""
    entry = facts.domain(domain)
    return [
        *_mx(facts, entry),
        _spf(facts, entry),
        *_dkim(entry),
        *_dmarc(entry),
        *_mta_sts(facts, entry),
        _tls_rpt(entry),
        *_autoconfig(facts, entry),
        *_addresses(facts, f"openpgpkey.{entry.name}", _ttl(entry), "WKD: OpenPGP keys"),
        *_tlsa(entry),
        *ptr_records(facts, _ttl(entry)),
    ]


def _ttl(entry: DomainFacts) -> int:
    return int(entry.settings.ttl)


def _mx(facts: Facts, entry: DomainFacts) -> list[Record]:
    host = _name(entry.mail_hostname)
    mx = Record(entry.name, "MX", (f"10 {host}.",), _ttl(entry), "MX: mail goes to the gateway")
    return [mx, *_addresses(facts, host, _ttl(entry), "The mail host is the gateway")]


def _addresses(facts: Facts, name: str, ttl: int, purpose: str) -> list[Record]:
    records = []
    if facts.gateway_ipv4:
        records.append(Record(_name(name), "A", (facts.gateway_ipv4,), ttl, purpose))
    if facts.gateway_ipv6:
        records.append(Record(_name(name), "AAAA", (facts.gateway_ipv6,), ttl, purpose))
    return records


def spf_text(facts: Facts, entry: DomainFacts) -> str:
    terms = [SPF_PREFIX]
    if facts.gateway_ipv4:
        terms.append(f"ip4:{facts.gateway_ipv4}")
    if facts.relay_host:
        terms.append(f"a:{_name(facts.relay_host)}")
    terms += one_line(entry.settings.spf_extra).split()
    return " ".join([*terms, "~all"])


def _spf(facts: Facts, entry: DomainFacts) -> Record:
    purpose = "SPF: the addresses mail leaves from"
    return Record(entry.name, "TXT", (spf_text(facts, entry),), _ttl(entry), purpose, SPF_PREFIX)


def dkim_text(public_key: str) -> str:
    return f"v=DKIM1; k=rsa; p={one_line(public_key)}"


def _dkim(entry: DomainFacts) -> list[Record]:
    records = []
    for key in entry.dkim_keys:
        name = _name(f"{key.selector}._domainkey.{entry.name}")
        if key.retired_at:
            purpose = f"DKIM: retired selector {key.selector}, to be removed"
            records.append(Record(name, "TXT", (), _ttl(entry), purpose))
        else:
            state = "signs" if key.active else "published, not signing yet"
            purpose = f"DKIM: selector {key.selector} ({state})"
            records.append(Record(name, "TXT", (dkim_text(key.public_key),), _ttl(entry), purpose))
    return records


def report_address(entry: DomainFacts) -> str:
    return entry.settings.dmarc_rua or f"postmaster@{entry.name}"


def dmarc_text(entry: DomainFacts) -> str:
    settings = entry.settings
    tags = [f"v=DMARC1; p={settings.dmarc_policy}", f"rua=mailto:{report_address(entry)}"]
    if settings.dmarc_ruf:
        tags.append(f"ruf=mailto:{settings.dmarc_ruf}")
    if settings.dmarc_strict_alignment:
        tags += ["adkim=s", "aspf=s"]
    return one_line("; ".join(tags))


def _dmarc(entry: DomainFacts) -> list[Record]:
    ttl = _ttl(entry)
    records = [Record(_name(f"_dmarc.{entry.name}"), "TXT", (dmarc_text(entry),), ttl, "DMARC")]
    # RFC 7489 §7.1: a report address in another domain must say it accepts this domain's reports.
    outside = {
        address.rpartition("@")[2].lower()
        for address in (report_address(entry), entry.settings.dmarc_ruf)
        if address
    } - {entry.name}
    for other in sorted(outside):
        name = _name(f"{entry.name}._report._dmarc.{other}")
        purpose = f"DMARC: {other} accepts {entry.name}'s reports"
        records.append(Record(name, "TXT", ("v=DMARC1;",), ttl, purpose))
    return records


def _mta_sts(facts: Facts, entry: DomainFacts) -> list[Record]:
    policy = mtasts.policy(entry.settings, entry.mail_hostname)
    text = f"v=STSv1; id={mtasts.policy_id(policy)}"
    mode = MtaStsMode(entry.settings.mta_sts_mode).value
    txt = Record(_name(f"_mta-sts.{entry.name}"), "TXT", (text,), _ttl(entry), f"MTA-STS ({mode})")
    host = f"mta-sts.{entry.name}"
    return [txt, *_addresses(facts, host, _ttl(entry), "MTA-STS: the gateway serves the policy")]


def _tls_rpt(entry: DomainFacts) -> Record:
    address = entry.settings.tlsrpt_rua or report_address(entry)
    text = f"v=TLSRPTv1; rua=mailto:{one_line(address)}"
    return Record(_name(f"_smtp._tls.{entry.name}"), "TXT", (text,), _ttl(entry), "TLS-RPT")


def _autoconfig(facts: Facts, entry: DomainFacts) -> list[Record]:
    host, ttl = _name(entry.mail_hostname), _ttl(entry)
    records = [
        Record(_name(f"{prefix}.{entry.name}"), "CNAME", (f"{host}.",), ttl, "Client setup")
        for prefix in ("autoconfig", "autodiscover")
        if f"{prefix}.{entry.name}" != host
    ]
    for service, priority, port in SERVICES:
        offered = port in facts.offered_ports
        value = f"{priority} 1 {port} {host}." if offered else "0 0 0 ."
        purpose = "Client setup" if offered else "Client setup: not offered"
        records.append(Record(_name(f"{service}.{entry.name}"), "SRV", (value,), ttl, purpose))
    return records


def _tlsa(entry: DomainFacts) -> list[Record]:
    settings = entry.settings
    if not (settings.tlsa_enabled and settings.tlsa_digest):
        return []
    name = _name(f"_25._tcp.{entry.mail_hostname}")
    value = f"3 1 1 {one_line(settings.tlsa_digest).lower()}"
    return [Record(name, "TLSA", (value,), _ttl(entry), "DANE: the mail host's key")]


def ptr_records(facts: Facts, ttl: int) -> list[Record]:
    if not facts.helo_name:
        return []
    helo = _name(facts.helo_name)
    return [
        Record(
            dns.reversename.from_address(address).to_text(omit_final_dot=True),
            "PTR",
            (f"{helo}.",),
            ttl,
            f"Reverse DNS of the gateway's {address}: the HELO name",
            reverse=True,
        )
        for address in facts.gateway_addresses
    ]


# --- zones ---------------------------------------------------------------------------------------


def zone_of(facts: Facts, name: str) -> str | None:
    """The managed domain whose zone holds ``name``: the longest one it ends in."""
    labels = name.split(".")
    for start in range(len(labels) - 1):
        candidate = ".".join(labels[start:])
        if candidate in facts._by_name:
            return candidate
    return None


def zone_records(facts: Facts, zone: str) -> list[Record]:
    """The records of every domain that live in ``zone``, merged per name and type (several
    domains share a mail host's A record)."""
    merged: dict[tuple[str, str], Record] = {}
    for entry in facts.domains:
        for record in expected_records(facts, entry.name):
            if record.reverse or zone_of(facts, record.name) != zone:
                continue
            merged[record.key] = _merge(merged.get(record.key), record)
    return list(merged.values())


def _merge(first: Record | None, second: Record) -> Record:
    if first is None:
        return second
    values = tuple(dict.fromkeys((*first.values, *second.values)))
    purposes = (
        first.purpose if second.purpose in first.purpose else f"{first.purpose}; {second.purpose}"
    )
    return Record(first.name, first.rtype, values, min(first.ttl, second.ttl), purposes, first.owns)


# --- values --------------------------------------------------------------------------------------


def txt_strings(text: str) -> list[str]:
    """A TXT value as character-strings of at most 255 bytes each (RFC 1035 §3.3.14)."""
    data = one_line(text).encode()
    return [data[i : i + TXT_CHUNK].decode() for i in range(0, len(data), TXT_CHUNK)] or [""]


def presentation(rtype: str, value: str) -> str:
    """The RDATA as a zone file (and dnspython) writes it: TXT quoted and split."""
    if rtype != "TXT":
        return one_line(value)
    return " ".join(f'"{_escape(part)}"' for part in txt_strings(value))


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _name(value: str) -> str:
    return one_line(value).strip().rstrip(".").lower()
