"""PostSRSd on a Postfix + Dovecot mail server: mail this server forwards to another domain
(an alias or a mailbox's forward to an address outside its domains) leaves with an SRS sender
(``SRS0=...@<first domain>``), so that SPF at the destination checks this server's domain,
whose record names the gateway, instead of the original sender's, which does not.

Debian's postsrsd 1.10 reads ``/etc/default/postsrsd`` and answers Postfix's TCP lookups on
127.0.0.1: 10001 rewrites envelope senders (``sender_canonical_maps``), 10002 turns SRS
addresses of bounces back into the original ones (``recipient_canonical_maps``). Senders of
this server's own domains are left alone (``SRS_EXCLUDE_DOMAINS``). Rendered only where
something forwards out, so that a server without forwards needs no postsrsd. Where the relay
rewrites every sender (``Relay.rewrite_sender_to``) SRS is left out: every message then leaves
with the relay's own address already.
"""

from gateway.bundle import File, Unit
from gateway.writers import key_values
from hosts.render import systemd
from hosts.render.context import RenderContext

DEFAULTS = "/etc/default/postsrsd"
KEY_FILE = "/etc/postsrsd.secret"  # made by the Debian package on installation
FORWARD_PORT = 10001
REVERSE_PORT = 10002
LISTEN = "127.0.0.1"


def needed(ctx: RenderContext) -> bool:
    """Whether this mail server forwards mail to another domain, with nothing rewriting it."""
    relay = ctx.host.relay
    if relay is not None and relay.rewrite_sender_to:
        return False
    local = {domain.name for domain in ctx.directory.domains}
    targets = [
        *(target for alias in ctx.directory.aliases for target in alias.destinations),
        *(target for box in ctx.directory.mailboxes for target in box.forward_to),
    ]
    return any(target.rpartition("@")[2] not in local for target in targets)


def main_cf_value() -> str:
    """The envelope sender lookup Postfix asks postsrsd."""
    return f"tcp:{LISTEN}:{FORWARD_PORT}"


def main_cf(ctx: RenderContext) -> list[tuple[str, str]]:
    if not needed(ctx):
        return []
    return [
        ("sender_canonical_maps", main_cf_value()),
        ("sender_canonical_classes", "envelope_sender"),
        ("recipient_canonical_maps", f"tcp:{LISTEN}:{REVERSE_PORT}"),
        ("recipient_canonical_classes", "envelope_recipient, header_recipient"),
    ]


def units(ctx: RenderContext) -> list[Unit]:
    """Called by the Postfix renderer for its mail server, before Postfix reloads."""
    if not needed(ctx):
        return []
    domains = [domain.name for domain in ctx.directory.domains]
    settings = [
        ("SRS_DOMAIN", domains[0]),
        ("SRS_EXCLUDE_DOMAINS", ",".join(domains[1:])),
        ("SRS_SEPARATOR", "="),
        ("SRS_SECRET", KEY_FILE),
        ("SRS_HASHLENGTH", "4"),
        ("SRS_HASHMIN", "4"),
        ("SRS_FORWARD_PORT", str(FORWARD_PORT)),
        ("SRS_REVERSE_PORT", str(REVERSE_PORT)),
        ("RUN_AS", "postsrsd"),
        ("SRS_LISTEN_ADDR", LISTEN),
        ("CHROOT", "/var/lib/postsrsd"),
    ]
    return [
        Unit(
            name="postsrsd",
            files=(File(DEFAULTS, key_values(settings, separator="=")),),
            checks=(
                "command -v postsrsd >/dev/null || { echo 'Forwarding to other domains needs "
                "SRS: install postsrsd (Debian package postsrsd).' >&2; exit 1; }",
            ),
            activate=(systemd.reload("postsrsd"),),
        )
    ]
