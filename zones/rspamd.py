"""DKIM signing on a Mailu mail server: rspamd's signing configuration and the keys it reads.

Mailu 2024.06 signs in its ``antispam`` container (rspamd). Its ``dkim_signing.conf`` sets
``use_vault = true``: rspamd asks the admin container for a domain's key, and the admin answers
with the file ``/dkim/<domain>.<DKIM_SELECTOR>.key`` under the one global ``DKIM_SELECTOR`` of
``mailu.env`` (``core/admin/mailu/internal/views/rspamd.py``). Mailgate rotates keys per domain
(publish a new selector, switch, retire), so a global selector cannot say which key signs.
Mailu's file ends with ``.include(try=true,priority=1,duplicate=merge)
"/overrides/dkim_signing.conf"``; this module renders that override (the ``antispam`` service
mounts ``/mailu/overrides/rspamd`` at ``/overrides``): at priority 1 its ``use_vault = false``
replaces Mailu's, and a ``domain`` block names each domain's current selector and key file,
which rspamd's ``dkim_signing`` module prefers to its global settings. Mailu's
``try_fallback = false`` stays, so a domain without a signing key sends unsigned mail.

The key files go where Mailu keeps its own, ``/mailu/dkim/<domain>.<selector>.key``, mounted
read-only into ``antispam`` at ``/dkim`` (``hosts.render.mailu``). Only the key that signs is
written; Mailu starts rspamd with ``-i``, so its workers run as root and read the 0600 files.
"""

import json

from gateway.bundle import File, Unit
from gateway.writers import lines, one_line, shell_quote
from hosts.choices import MailBackend
from hosts.render import mailu
from zones import dkim
from zones.selectors import signing_keys

OVERRIDE = f"{mailu.RSPAMD_OVERRIDES}/dkim_signing.conf"


def units(ctx) -> list[Unit]:
    host = ctx.host
    if not (host.is_mailserver and host.mail_backend == MailBackend.MAILU):
        return []
    keys = signing_keys(ctx)
    if not keys:
        return []
    key_files = [
        File(
            f"{mailu.DKIM_DIR}/{key_name(key)}",
            dkim.signing_pem(key),
            mode=0o600,
            secret=True,
        )
        for key in keys
    ]
    return [
        Unit(
            name="mailu-dkim",
            files=(File(OVERRIDE, lines(override(keys))), *key_files),
            checks=(configtest(),),
            # rspamd reads its configuration and opens the keys when it starts.
            activate=(f"cd {mailu.MAILU_DIR} && docker compose restart antispam",),
        )
    ]


# Reads the override on stdin and has rspamadm parse it as rspamd does: as the body of the
# dkim_signing section (Mailu's dkim_signing.conf includes it there). Plain sh, as in Mailu's
# Alpine container.
_CONFIGTEST = (
    'dir="$(mktemp -d)" && cat > "$dir/override.conf" && '
    'printf \'dkim_signing {\\n  .include "%s/override.conf"\\n}\\n\' "$dir" '
    '> "$dir/rspamd.conf" && '
    'rspamadm configtest -c "$dir/rspamd.conf"; status=$?; rm -rf "$dir"; exit $status'
)


def configtest() -> str:
    """Check the staged override with rspamd's parser before it replaces the live one: Mailu's
    own rspamd in the running antispam container, else the host's rspamadm, else (no Mailu
    running yet, no rspamd on the host) nothing. A syntax error fails the deployment instead
    of leaving Mailu's antispam unable to start (tests/test_render_mailu_oracle.py checks the
    override inside Mailu's full rspamd configuration)."""
    live = shell_quote(mailu.COMPOSE_PATH)
    staged = f'"$STAGE"{shell_quote(OVERRIDE)}'
    test = shell_quote(_CONFIGTEST)
    return (
        "if command -v docker >/dev/null 2>&1 && "
        f"docker compose -f {live} ps --status running --services 2>/dev/null | grep -qx antispam; "
        f"then docker compose -f {live} exec -T antispam sh -c {test} < {staged}; "
        f"elif command -v rspamadm >/dev/null 2>&1; then sh -c {test} < {staged}; fi"
    )


def override(keys) -> list[str]:
    body = ["use_vault = false;", "domain {"]
    for key in keys:
        body += [
            f"  {_string(key.domain.name)} {{",
            f"    selector = {_string(key.selector)};",
            f"    path = {_string(f'{mailu.DKIM_MOUNT}/{key_name(key)}')};",
            "  }",
        ]
    return [*body, "}"]


def key_name(key) -> str:
    """Mailu's own naming (its ``DKIM_PATH``), so its tools recognise the file."""
    return f"{key.domain.name}.{key.selector}.key"


def _string(value: str) -> str:
    """A UCL string: JSON's quoting, which UCL reads."""
    return json.dumps(one_line(value))
