"""Each mailbox's forwarding and auto-reply as a Pigeonhole Sieve script (RFC 5228), run by
Dovecot's LMTP before delivery (``sieve_before``, hosts/render/dovecot.py).

- Forwarding is ``redirect`` (with ``:copy``, RFC 3894, when a copy stays in the mailbox).
  Postfix gives the redirected message an SRS sender (postsrsd, hosts/render/postsrsd.py) so
  that it passes SPF at its destination.
- The auto-reply is ``vacation`` (RFC 5230) with ``:days``: at most one reply per sender in
  that many days. Pigeonhole's vacation itself never answers what RFC 3834 says not to (an
  ``Auto-Submitted`` other than ``no``, ``Precedence: bulk/list/junk``, ``List-*`` headers, a
  null or ``MAILER-DAEMON``/``owner-``/``-request`` sender, a message not addressed to the
  mailbox); the script adds ``noreply`` senders, as Mailu's does. The first and last day are in
  the script (``currentdate``, RFC 5260), so it starts and stops without a deployment.

Values enter the script only as quoted strings, escaped as RFC 5228 2.4.2 says (``\\`` and
``"``); the model already refused control characters (a line break is a legal part of a quoted
string, and the body keeps its lines; the file writer checks each line). No script requires
``variables``, so ``${`` stays text.
"""

from gateway.selectors import MailboxEntry
from gateway.writers import lines, one_line

VACATION_DAYS = 3
NOREPLY = ("noreply", "no-reply", "donotreply", "do-not-reply")


def script(mailbox: MailboxEntry, *, aliases: tuple[str, ...] = ()) -> bytes | None:
    """The mailbox's script, or None when it forwards nothing and answers nothing. ``aliases``
    are the addresses that deliver to it: the auto-reply answers mail sent to them too."""
    body = [*_autoreply(mailbox, aliases), *_forward(mailbox)]
    if not body:
        return None
    extensions = ["copy"] if mailbox.forward_to and mailbox.forward_keep_copy else []
    if mailbox.autoreply_enabled:
        extensions += ["vacation", "date", "relational"]
    if extensions:
        body.insert(0, f"require {_list(extensions)};")
    # The auto-reply's text keeps its lines inside its quoted string; each is checked.
    return lines(part for line in body for part in line.split("\n"))


def _autoreply(mailbox: MailboxEntry, aliases: tuple[str, ...]) -> list[str]:
    if not mailbox.autoreply_enabled:
        return []
    tests = [f'not address :localpart :is ["from", "reply-to"] {_list(NOREPLY)}']
    if mailbox.autoreply_start:
        tests.append(f'currentdate :value "ge" "date" "{mailbox.autoreply_start.isoformat()}"')
    if mailbox.autoreply_end:
        tests.append(f'currentdate :value "le" "date" "{mailbox.autoreply_end.isoformat()}"')
    return [
        f"if allof({', '.join(tests)}) {{",
        f"  vacation :days {VACATION_DAYS} :addresses {_list([mailbox.address, *aliases])}",
        f"    :subject {quoted(mailbox.autoreply_subject)}",
        f"    {quoted(mailbox.autoreply_body, multiline=True)};",
        "}",
    ]


def _forward(mailbox: MailboxEntry) -> list[str]:
    copy = ":copy " if mailbox.forward_keep_copy else ""
    return [f"redirect {copy}{quoted(address)};" for address in mailbox.forward_to]


def quoted(value: str, *, multiline: bool = False) -> str:
    """A Sieve quoted string (RFC 5228 2.4.2): backslash and double quote escaped. Only the
    auto-reply's text may hold line breaks (Pigeonhole reads the script's LF as the CRLF the
    RFC names); every other value is refused with one."""
    text = value if multiline else one_line(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _list(values) -> str:
    return "[" + ", ".join(quoted(value) for value in values) + "]"
