"""Asking DNS: the resolver the live checks use (``MAILGATE_DNS_RESOLVER``) and direct queries to
an authoritative server (for a push plan). dnspython does the work; answers come back as
``rdata.Value`` sets, errors as text that says what happened."""

import ipaddress
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.nameserver
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from zones.rdata import Value, found

TIMEOUT = 4.0  # seconds for one question, retries included


@dataclass(frozen=True)
class Answer:
    """What a name holds for a type: its values and TTL, or that it does not exist, or why no
    answer came."""

    values: tuple[Value, ...] = ()
    ttl: int = 0
    nxdomain: bool = False
    error: str = ""
    rrsig: bool = False  # the answer carried signatures
    authenticated: bool = False  # the resolver validated them (AD flag)
    timed_out: bool = False  # the resolver did not answer at all


def parse_servers(text: str) -> list[tuple[str, int]]:
    """``"192.0.2.53, 192.0.2.54:5353, [2001:db8::53]:53"`` as (address, port) pairs."""
    servers = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        address, port = item, 53
        if item.startswith("["):
            address, _, rest = item[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") else 53
        elif item.count(":") == 1:
            address, port_text = item.split(":")
            port = int(port_text)
        ipaddress.ip_address(address)  # ValueError for a name: resolvers are given by address
        servers.append((address, port))
    return servers


def _configured_servers() -> list[tuple[str, int]]:
    try:
        return parse_servers(settings.MAILGATE_DNS_RESOLVER)
    except ValueError:
        raise ImproperlyConfigured(
            f"MAILGATE_DNS_RESOLVER={settings.MAILGATE_DNS_RESOLVER!r} is not a list of "
            "resolver addresses such as 192.0.2.53 or 127.0.0.1:5353, separated by commas."
        ) from None


def describe(servers: list[tuple[str, int]]) -> str:
    if not servers:
        return "the system resolver (/etc/resolv.conf)"
    return ", ".join(f"[{a}]:{p}" if ":" in a else f"{a}:{p}" for a, p in servers)


class Lookup:
    """Questions to a resolver: the configured one, or ``servers`` when given."""

    def __init__(self, servers: list[tuple[str, int]] | None = None, timeout: float = TIMEOUT):
        if servers is None:
            servers = _configured_servers()
        self.servers = servers
        self.timeout = timeout

    @property
    def description(self) -> str:
        return describe(self.servers)

    def _resolver(self, *, dnssec: bool = False) -> dns.resolver.Resolver:
        # A fresh resolver per question: no cache to go stale, nothing shared between threads.
        resolver = dns.resolver.Resolver(configure=not self.servers)
        if self.servers:
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(address, port) for address, port in self.servers
            ]
        resolver.lifetime = self.timeout
        resolver.timeout = self.timeout / 2
        if dnssec:
            resolver.use_edns(0, dns.flags.DO, 1232)
            resolver.flags = dns.flags.RD | dns.flags.AD  # ask for the AD bit (RFC 6840 §5.7)
        return resolver

    def query(self, name: str, rtype: str, *, dnssec: bool = False) -> Answer:
        try:
            answer = self._resolver(dnssec=dnssec).resolve(
                f"{name}.", rtype, raise_on_no_answer=False, search=False
            )
        except dns.resolver.NXDOMAIN:
            return Answer(nxdomain=True)
        except dns.resolver.NoNameservers as exc:
            return Answer(error=f"the resolver failed to answer ({_first_error(exc)})")
        except dns.exception.Timeout:
            return Answer(
                error=f"no answer within {self.timeout:g} s from {self.description}",
                timed_out=True,
            )
        except (dns.exception.DNSException, OSError) as exc:
            return Answer(error=f"the question failed: {exc}")
        return _answer(answer.response, answer.rrset)


def _answer(response: dns.message.Message, rrset) -> Answer:
    signed = any(r.rdtype == dns.rdatatype.RRSIG for r in response.answer)
    return Answer(
        values=tuple(found(rdata) for rdata in rrset) if rrset is not None else (),
        ttl=rrset.ttl if rrset is not None else 0,
        rrsig=signed,
        authenticated=bool(response.flags & dns.flags.AD),
    )


def _first_error(exc: dns.resolver.NoNameservers) -> str:
    errors = exc.kwargs.get("errors") or []
    for _server, _tcp, _port, error in (entry[:4] for entry in errors if len(entry) >= 4):
        text = error if isinstance(error, str) else str(error)
        return text or "SERVFAIL"
    return "SERVFAIL"


def ask_server(address: str, port: int, name: str, rtype: str, timeout: float = TIMEOUT) -> Answer:
    """One question straight to an authoritative server over TCP (what a push will change)."""
    query = dns.message.make_query(f"{name}.", rtype)
    query.flags &= ~dns.flags.RD
    try:
        response = dns.query.tcp(query, address, port=port, timeout=timeout)
    # EOFError: dnspython's word for a server that closed the connection without an answer.
    except (dns.exception.DNSException, OSError, EOFError) as exc:
        return Answer(error=f"{address}:{port} did not answer: {exc or type(exc).__name__}")
    rcode = response.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return Answer(nxdomain=True)
    if rcode != dns.rcode.NOERROR:
        return Answer(error=f"{address}:{port} answered {dns.rcode.to_text(rcode)}")
    wanted = dns.rdatatype.from_text(rtype)
    rrset = next(
        (r for r in response.answer if r.rdtype == wanted and r.name == query.question[0].name),
        None,
    )
    return _answer(response, rrset)
