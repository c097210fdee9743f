"""Small writers for the line formats Mailgate renders (Postfix ``main.cf`` and maps, env files,
``wg0.conf``, Dovecot, HAProxy) and for YAML.

Each refuses a value that holds a newline or another control character, so that no field, even
one that slipped past the model's validators, can add a line to a configuration file. Every file
starts by saying it is managed by Mailgate.
"""

import json
import re
import shlex
from collections.abc import Iterable

import yaml

from gateway.bundle import RenderError
from gateway.validators import first_control_character

MANAGED = "Managed by Mailgate. Do not edit: the next deployment replaces this file."
_DNS_NAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+")


class _SafeDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):
    """The safe dumper with libyaml's emitter where PyYAML has it (Mailu's directory of
    thousands of mailboxes is one document), and never an ``&anchor``/``*alias``: a value
    used twice is written twice, as a person would, which also saves the bookkeeping."""

    def ignore_aliases(self, data) -> bool:
        return True


def one_line(value) -> str:
    """``value`` as text, refused if it holds a character that would start a new line."""
    text = str(value)
    if (char := first_control_character(text)) is not None:
        raise RenderError(
            f"Refusing to render {text!r}: it contains the control character {char!r}."
        )
    return text


def dns_name(value) -> str:
    """A lowercase ASCII host name, or RenderError: names go into HAProxy ACLs and Traefik rules,
    where a space or backtick would change the rule."""
    text = one_line(value)
    if not _DNS_NAME.fullmatch(text) or len(text) > 253:
        raise RenderError(f"Refusing to route {text!r}: not a lowercase ASCII host name.")
    return text


def header(comment: str = "#") -> list[str]:
    return [f"{comment} {MANAGED}"]


def lines(body: Iterable[str], *, comment: str = "#") -> bytes:
    """A file of lines, each checked, after the managed-by header."""
    return _join([*header(comment), *(one_line(line) for line in body)])


def key_values(pairs: Iterable[tuple[str, object]], *, separator: str = " = ") -> bytes:
    """``key = value`` lines (Postfix main.cf, Dovecot settings, env files with ``=``)."""
    return _join(
        [*header(), *(f"{one_line(key)}{separator}{one_line(value)}" for key, value in pairs)]
    )


def table(rows: Iterable[tuple[str, str]]) -> bytes:
    """A Postfix lookup table source: ``key value`` per line (``postmap`` turns it into a map)."""
    return _join([*header(), *(f"{_map_key(key)} {one_line(value)}" for key, value in rows)])


def shell_quote(value) -> str:
    return shlex.quote(one_line(value))


def yaml_document(data) -> bytes:
    """YAML built from data (never from text), every string in it checked."""
    _check_strings(data)
    body = yaml.dump(
        data,
        Dumper=_SafeDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=2**30,  # long Traefik rules stay on one line, as people write them
    )
    return _join(header()) + body.encode()


def json_yaml_document(data) -> bytes:
    """A YAML document in its JSON form (JSON is YAML: any YAML parser reads it), for data too
    large for PyYAML's Python representer, such as a directory of ten thousand mailboxes: the
    C JSON encoder writes it in a fraction of the time. One item per line, keys in order."""
    _check_strings(data)
    return _join(header()) + json.dumps(data, indent=1, ensure_ascii=False).encode() + b"\n"


def _map_key(key: str) -> str:
    """A key as Postfix reads it: the line's first word, and a line that starts with ``#`` is a
    comment, so such a key would silently drop its row (a mailbox, an alias)."""
    key = one_line(key)
    if not key or key.startswith("#") or any(char.isspace() for char in key):
        raise RenderError(
            f"Refusing to render the map key {key!r}: it is empty, has a space or starts with #."
        )
    return key


class Text(str):
    """A value of several lines (an auto-reply's text): its line feeds are kept (the model
    stores no other line break), every other control character refused."""


def _check_strings(data) -> None:
    if isinstance(data, Text):
        for line in data.split("\n"):
            one_line(line)
    elif isinstance(data, str):
        one_line(data)
    elif isinstance(data, dict):
        for key, value in data.items():
            _check_strings(key)
            _check_strings(value)
    elif isinstance(data, list | tuple):
        for item in data:
            _check_strings(item)


def _join(all_lines: list[str]) -> bytes:
    return ("\n".join(all_lines) + "\n").encode()
