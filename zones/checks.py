"""Live checks: ask a resolver for every record a domain needs and say, for each, whether it is
there and equal, and if not, what differs and how to fix it. Then the reverse DNS of the
gateway's addresses (forward-confirmed), the HELO name against it, and DNSSEC.

Questions run in parallel (a handful of threads), so a check of ~25 names takes about as long as
the slowest answer, not the sum."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from zones.choices import CheckKind, CheckStatus
from zones.rdata import key_of
from zones.records import SPF_PREFIX, Facts, Record, expected_records, presentation, zone_of
from zones.resolver import Answer, Lookup

PARALLEL = 8


@dataclass(frozen=True)
class Finding:
    kind: str
    name: str
    rtype: str
    purpose: str
    status: str
    expected: tuple[str, ...] = ()
    found: tuple[str, ...] = ()
    message: str = ""
    fix: str = ""


def check_domain(facts: Facts, domain: str, lookup: Lookup) -> list[Finding]:
    records = expected_records(facts, domain)
    apex = lookup.query(domain, "SOA", dnssec=True)
    if apex.timed_out:
        # The resolver does not answer at all: every record fails with that one reason, at
        # once, instead of each question waiting out its own time-out.
        answers = [apex] * len(records)
    else:
        answers = _parallel(lambda record: lookup.query(record.name, record.rtype), records)
    findings = [
        check_record(record, answer, zone_of(facts, record.name))
        for record, answer in zip(records, answers, strict=True)
    ]
    if not apex.timed_out:
        findings += reverse_findings(facts, lookup)
    findings.append(dnssec_finding(facts, domain, apex))
    return findings


def _parallel(ask: Callable, items: list) -> list:
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        return list(pool.map(ask, items))


# --- one record ----------------------------------------------------------------------------------


def check_record(record: Record, answer: Answer, zone: str | None) -> Finding:
    expected = {key_of(record.rtype, value): value for value in record.values}
    owned = [value.key for value in answer.values if record.owned(value.key)]
    finding = Finding(
        CheckKind.RECORD,
        record.name,
        record.rtype,
        record.purpose,
        CheckStatus.OK,
        tuple(expected),
        tuple(owned),
    )
    if answer.error:
        return _with(finding, CheckStatus.FAIL, f"Could not check: {answer.error}.", "")
    missing = [value for key, value in expected.items() if key not in owned]
    extra = [key for key in owned if key not in expected]
    if not missing and not extra:
        return finding
    explained = _explain(record, answer, missing, extra, zone, owned=len(owned))
    return _with(finding, CheckStatus.FAIL, *explained)


def _with(finding: Finding, status: str, message: str, fix: str) -> Finding:
    return Finding(**{**finding.__dict__, "status": status, "message": message, "fix": fix})


def _explain(record: Record, answer: Answer, missing, extra, zone, *, owned) -> tuple[str, str]:
    where = _where(record, zone)
    label = f"{record.name} {record.rtype}"
    if not record.values:
        return (
            f"{label} is still published: {_list(extra)}.",
            f"Remove it {where}.",
        )
    if record.owns == SPF_PREFIX and owned > 1:
        return (
            f"{record.name} has {owned} SPF records; receivers treat more than one as "
            "an error (permerror) and SPF fails for all your mail.",
            f"Keep only {_line(record, record.values[0])} and remove {_list(extra)} {where}.",
        )
    if not answer.values:
        exists = "does not exist" if answer.nxdomain else f"has no {record.rtype} record"
        lines = " and ".join(_line(record, value) for value in missing)
        return f"{record.name} {exists}.", f"Add {lines} {where}."
    if missing and extra:
        return (
            f"{label} is {_list(extra)} instead of {_list(missing)}.",
            f"Change it to {' and '.join(_line(record, v) for v in missing)} {where}.",
        )
    if missing:
        return (
            f"{label} lacks {_list(missing)}.",
            f"Add {' and '.join(_line(record, v) for v in missing)} {where}.",
        )
    return f"{label} also holds {_list(extra)}, which Mailgate does not expect.", (
        f"Remove {_list(extra)} {where}."
    )


def _where(record: Record, zone: str | None) -> str:
    if record.reverse:
        return "at the provider of the address (reverse DNS is set where the VPS is rented)"
    if zone is None:
        return f"in the DNS of {record.name} (a zone Mailgate does not manage)"
    return f"in the zone {zone} (or push the zone from Mailgate)"


def _line(record: Record, value: str) -> str:
    return f"“{record.name}. {record.ttl} IN {record.rtype} {presentation(record.rtype, value)}”"


def _list(values) -> str:
    return ", ".join(f"“{value}”" for value in values) or "nothing"


# --- reverse DNS and HELO ------------------------------------------------------------------------


def reverse_findings(facts: Facts, lookup: Lookup) -> list[Finding]:
    if not facts.gateway_addresses:
        return [
            Finding(
                CheckKind.FCRDNS,
                "",
                "PTR",
                "Reverse DNS of the gateway",
                CheckStatus.WARN,
                message="No gateway address is known, so its reverse DNS cannot be checked.",
                fix="Give the gateway host its public IPv4 (and IPv6).",
            )
        ]
    findings = []
    for address in facts.gateway_addresses:
        names = _ptr_names(address, lookup)
        findings.append(fcrdns_finding(address, names, lookup))
        findings.append(helo_finding(facts, address, names))
    return findings


def _ptr_names(address: str, lookup: Lookup) -> list[str]:
    import dns.reversename

    name = dns.reversename.from_address(address).to_text(omit_final_dot=True)
    answer = lookup.query(name, "PTR")
    return [value.key.rstrip(".") for value in answer.values]


def fcrdns_finding(address: str, names: list[str], lookup: Lookup) -> Finding:
    """PTR → name → A/AAAA must contain the address again (forward-confirmed reverse DNS)."""
    rtype = "AAAA" if ":" in address else "A"
    base = Finding(CheckKind.FCRDNS, address, "PTR", "Forward-confirmed reverse DNS", "")
    if not names:
        return _with(
            base,
            CheckStatus.FAIL,
            f"{address} has no PTR record; many receivers refuse mail from such addresses.",
            "Ask the VPS provider to set the reverse DNS of the address to the mail host name.",
        )
    forward = {name: lookup.query(name, rtype) for name in names}
    confirmed = [n for n, a in forward.items() if any(v.key == address for v in a.values)]
    found = tuple(f"{n} → {', '.join(v.key for v in a.values) or '-'}" for n, a in forward.items())
    base = Finding(**{**base.__dict__, "expected": (address,), "found": found})
    if confirmed:
        return _with(base, CheckStatus.OK, f"{address} → {confirmed[0]} → {address}.", "")
    return _with(
        base,
        CheckStatus.FAIL,
        f"{address}'s PTR names {', '.join(names)}, but {rtype} of that name does not hold "
        f"{address}.",
        f"Point {names[0]}'s {rtype} record at {address}.",
    )


def helo_finding(facts: Facts, address: str, names: list[str]) -> Finding:
    helo = facts.helo_name
    base = Finding(
        CheckKind.HELO, address, "PTR", "The mail server greets with the PTR name", "", (helo,)
    )
    base = Finding(**{**base.__dict__, "found": tuple(names)})
    if not helo:
        return _with(base, CheckStatus.WARN, "There is no mail server host to compare.", "")
    if helo in names:
        return _with(base, CheckStatus.OK, f"HELO {helo} = PTR of {address}.", "")
    ptr = ", ".join(names) or "nothing"
    return _with(
        base,
        CheckStatus.FAIL,
        f"The mail server greets as {helo} (Postfix myhostname / Mailu's first hostname), but "
        f"the PTR of {address} says {ptr}.",
        f"Set the reverse DNS of {address} to {helo}, or set the mail server host's public host "
        f"name to {names[0] if names else 'the PTR name'} and deploy it.",
    )


# --- DNSSEC --------------------------------------------------------------------------------------


def dnssec_finding(facts: Facts, domain: str, answer: Answer) -> Finding:
    """The DNSSEC status as the answer to the apex SOA (asked with the DO bit) shows it."""
    tlsa = bool(facts.domain(domain).settings.tlsa_enabled)
    status, message, fix = _dnssec_status(answer, tlsa)
    return Finding(
        CheckKind.DNSSEC,
        domain,
        "SOA",
        "DNSSEC",
        status,
        found=(dnssec_label(answer),),
        message=message,
        fix=fix,
    )


def dnssec_label(answer: Answer) -> str:
    if answer.error:
        return "bogus" if "SERVFAIL" in answer.error else "unknown"
    if answer.authenticated:
        return "validated"
    return "signed" if answer.rrsig else "unsigned"


def _dnssec_status(answer: Answer, tlsa: bool) -> tuple[str, str, str]:
    label = dnssec_label(answer)
    if label == "validated":
        return CheckStatus.OK, "Signed, and the resolver validated it.", ""
    if label == "signed":
        return (
            CheckStatus.WARN,
            "Signed, but this resolver did not validate it (it may not validate at all).",
            "Check with a validating resolver (MAILGATE_DNS_RESOLVER).",
        )
    if label in ("bogus", "unknown"):
        return (
            CheckStatus.FAIL,
            f"The resolver could not answer for the zone: {answer.error}. A signed zone with a "
            "broken chain of trust looks like this.",
            "Check the DS record at the registrar against the zone's keys.",
        )
    if tlsa:
        return (
            CheckStatus.FAIL,
            "The zone is not signed, so senders ignore its TLSA record.",
            "Sign the zone (DNSSEC) or turn TLSA off.",
        )
    return CheckStatus.INFO, "Not signed (optional; DANE/TLSA needs it).", ""
