"""Validators for every value that can reach a configuration file.

A configuration file is a line format: one newline or control character in a value would add a
line (an extra Postfix parameter, a second ``AllowedIPs``). Every text field that is rendered
therefore carries ``reject_control_characters``; the stricter validators below imply it.
"""

import ipaddress
import re
import unicodedata

import idna
from django.core.exceptions import ValidationError

# What Postfix, Dovecot and Mailu all read as one plain local part, as a dot-atom: Dovecot's
# default auth_username_chars (letters, digits, "." "-" "_"), and "+", which Postfix and Mailu
# look up whole before they read it as a sub-address (alice+lists@).
# Everything else means something to one of them: "#" starts a comment line in a map or the
# passwd-file, ":" separates passwd-file fields, "," and spaces separate a Postfix or Mailu list,
# "%" and "!" are Postfix's percent hack and bang paths, "$" expands in a regexp map, "|" and "/"
# name commands and files in aliases(5). Mail to such an address is rare enough to refuse.
_LOCAL_PART = re.compile(r"^[a-z0-9_+-]+(\.[a-z0-9_+-]+)*$")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
LINE_BREAK = re.compile(r"\r\n|\r|\n")  # not str.splitlines(), which also splits at \x1c, \u2028
_WIREGUARD_KEY = re.compile(r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw480]=$")


def first_control_character(value: str) -> str | None:
    """The first character that would break a line format (newline, NUL, escape, bidi...)."""
    if value.isprintable():  # the common case, in C: printable excludes every such character
        return None
    for char in value:
        # Cs: a lone surrogate (JSON's "\\ud800") is no character at all; no file can hold it.
        if unicodedata.category(char) in {"Cc", "Cf", "Cs", "Zl", "Zp"}:
            return char
    return None


def reject_control_characters(value: str) -> None:
    if (char := first_control_character(str(value))) is not None:
        raise ValidationError(
            "This value must be on one line, without control characters (found %(char)s).",
            code="control_character",
            params={"char": repr(char)},
        )


def reject_control_characters_in_text(value: str) -> None:
    """Text of several lines (an auto-reply): line breaks are kept, every other control
    character (a tab too) refused as on one line."""
    for line in LINE_BREAK.split(str(value)):
        reject_control_characters(line)


def to_ascii_domain(value: str) -> str:
    """The one stored form of a domain name: lowercase A-labels (``xn--``), without the root's
    trailing dot; or ValidationError.

    Internationalized names go through UTS #46 mapping (the ``idna`` package, non-transitional,
    as browsers and Postfix's SMTPUTF8 do), so ``family.example`` typed in fullwidth letters
    (U+FF46...) is stored as ``family.example`` and ``ß`` stays ``ß`` (``xn--zca``). One
    trailing dot (the DNS root) is dropped; anything else that is not a host name (a space, a
    second dot) is refused rather than repaired.
    """
    reject_control_characters(value)
    name = value.removesuffix(".")
    if not name or "." not in name:
        raise ValidationError(
            "Enter a fully qualified domain name such as example.org.", code="invalid_domain"
        )
    try:
        ascii_name = idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValidationError(
            "%(value)s is not a valid domain name: %(reason)s.",
            code="invalid_domain",
            params={"value": value, "reason": exc},
        ) from None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValidationError(
            "%(value)s is not a valid domain name.", code="invalid_domain", params={"value": value}
        )
    if labels[-1].isdigit():
        raise ValidationError(
            "%(value)s is an address, not a domain name.",
            code="invalid_domain",
            params={"value": value},
        )
    return ascii_name


def validate_domain_name(value: str) -> None:
    to_ascii_domain(value)


def to_local_part(value: str) -> str:
    """The one stored form of a local part (lowercase, see ``_LOCAL_PART``), or ValidationError."""
    reject_control_characters(value)
    local_part = value.lower()
    if len(local_part) > 64 or not _LOCAL_PART.match(local_part):
        raise ValidationError(
            "%(value)s is not a valid local part: use letters, digits and . _ - + "
            "(no leading, trailing or double dot, no space or #, at most 64 characters).",
            code="invalid_local_part",
            params={"value": value},
        )
    return local_part


def validate_local_part(value: str) -> None:
    to_local_part(value)


def to_address(value: str) -> str:
    """The one stored form of a mail address: ``local@domain`` as the two parts are stored."""
    reject_control_characters(value)
    local, at, domain = value.strip().rpartition("@")
    if not at or not local:
        raise ValidationError(
            "%(value)s is not a mail address (local@domain).",
            code="invalid_address",
            params={"value": value},
        )
    return f"{to_local_part(local)}@{to_ascii_domain(domain)}"


def validate_address(value: str) -> None:
    to_address(value)


def are_addresses(values) -> bool:
    """Whether ``values`` is a list of addresses in their stored form (safe to look up)."""
    try:
        return isinstance(values, list) and all(to_address(value) == value for value in values)
    except (ValidationError, TypeError):
        return False


def to_host(value: str) -> str:
    """A host is an IP address or a domain name (an SSH target, a smarthost), the name stored
    as ``to_ascii_domain`` makes it."""
    reject_control_characters(value)
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return to_ascii_domain(value)


def validate_host(value: str) -> None:
    to_host(value)


def validate_cidr(value: str) -> None:
    reject_control_characters(value)
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValidationError(
            "%(value)s is not a network in CIDR form such as 10.8.0.0/24 (%(reason)s).",
            code="invalid_cidr",
            params={"value": value, "reason": exc},
        ) from None


def validate_cidr_list(value) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("Give a list of networks.", code="invalid_cidr")
    for network in value:
        validate_cidr(network)


def validate_wireguard_key(value: str) -> None:
    if not _WIREGUARD_KEY.match(value):
        raise ValidationError(
            "This is not a WireGuard key (44 characters of base64 ending in '=', "
            "as printed by wg genkey / wg pubkey).",
            code="invalid_wireguard_key",
        )


def validate_port(value: int) -> None:
    if not 1 <= value <= 65535:
        raise ValidationError(
            "%(value)s is not a TCP/UDP port (1-65535).",
            code="invalid_port",
            params={"value": value},
        )
