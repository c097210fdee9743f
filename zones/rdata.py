"""Record values in the three forms Mailgate meets: its own (``records.Record``), dnspython's
RDATA (answers, updates) and a comparable key, so a value is equal whichever way it came."""

from dataclasses import dataclass

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from zones.records import presentation


@dataclass(frozen=True)
class Value:
    """A value found in DNS: ``key`` to compare with, ``text`` as the server holds it (a TXT
    record's strings split as they were stored, which is what a deletion must name)."""

    key: str
    text: str


def make(rtype: str, value: str) -> dns.rdata.Rdata:
    """Mailgate's value as RDATA (TXT split into 255-byte strings)."""
    return parse(rtype, presentation(rtype, value))


def parse(rtype: str, text: str) -> dns.rdata.Rdata:
    """RDATA from its presentation form, names absolute (never made relative to a zone)."""
    return dns.rdata.from_text(
        dns.rdataclass.IN,
        dns.rdatatype.from_text(rtype),
        text,
        origin=dns.name.root,
        relativize=False,
    )


def key_of(rtype: str, value: str) -> str:
    """The comparable form of one of Mailgate's values."""
    return found(make(rtype, value)).key


def found(rdata: dns.rdata.Rdata) -> Value:
    """A value from an answer: TXT joined into one text, everything else in lowercase."""
    if rdata.rdtype == dns.rdatatype.TXT:
        key = b"".join(rdata.strings).decode(errors="replace")
    else:
        key = rdata.to_text().lower()
    return Value(key, rdata.to_text())
