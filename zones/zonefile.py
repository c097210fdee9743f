"""A zone file of the records Mailgate manages in one zone, in the master file format that BIND,
Knot and NSD read (RFC 1035 §5), complete enough to pass ``named-checkzone``: SOA and NS first,
then every record with its purpose as a comment. Long TXT values (DKIM) are split into 255-byte
strings. Names are written absolute, so a line can be pasted into another zone file as it is."""

from gateway.bundle import RenderError
from gateway.writers import one_line
from zones.records import Facts, Record, presentation, zone_records

# SOA timers: refresh, retry, expire, negative-caching TTL (RFC 1912 §2.2 ranges).
SOA_TIMERS = (3600, 900, 1209600, 300)


def zone_file(
    facts: Facts,
    zone: str,
    *,
    serial: int,
    nameservers: list[str],
    contact: str,
    ttl: int,
    placeholder_ns: bool = False,
) -> bytes:
    records = zone_records(facts, zone)
    servers = [f"{name.rstrip('.')}." for name in nameservers]
    if not servers:
        raise RenderError(f"Give {zone} its name servers first (DNS settings).")
    body = [
        f"; Written by Mailgate: the records it manages in {zone}. Merge them into the zone",
        "; that is served, or serve this file as it is once the SOA and NS lines are yours.",
        *(
            [f"; No name servers are set: {servers[0]} stands in; set them in the DNS settings."]
            if placeholder_ns
            else []
        ),
        f"$ORIGIN {zone}.",
        f"$TTL {int(ttl)}",
        f"{zone}. {int(ttl)} IN SOA {servers[0]} {_mailbox(contact)} "
        f"{int(serial)} {' '.join(map(str, SOA_TIMERS))}",
        *(f"{zone}. {int(ttl)} IN NS {server}" for server in servers),
        *_records(records),
    ]
    return ("\n".join(one_line(line) for line in body) + "\n").encode()


def _records(records: list[Record]) -> list[str]:
    body = []
    for record in sorted(records, key=_order):
        body.append("")
        body.append(f"; {record.purpose}")
        if not record.values:
            body.append(f"; remove {record.name}. {record.rtype} if it is still there")
        for value in record.values:
            rdata = presentation(record.rtype, value)
            body.append(f"{record.name}. {record.ttl} IN {record.rtype} {rdata}")
    return body


def _order(record: Record) -> tuple:
    # The zone's own name first, then by name read from the right (as the zone is a tree).
    return (list(reversed(record.name.split("."))), record.rtype)


def _mailbox(address: str) -> str:
    """An address as the SOA RNAME: the local part's dots escaped, the @ a dot."""
    local, _, domain = address.rpartition("@")
    return f"{local.replace('.', chr(92) + '.')}.{domain.rstrip('.')}."
