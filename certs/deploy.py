"""The certificates' part of a host's bundle: each certificate the host presents, where its
readers look for it: in the layout certbot writes (``/etc/letsencrypt/live/<name>/``) for
Postfix, Dovecot and nginx (``hosts.render.context``), and in Mailu's certs volume for Mailu's
front (``TLS_FLAVOR=cert``: the full chain as ``cert.pem``, the key as ``key.pem``).

Before anything is activated, the staged copy is checked on the host: the certificate must
verify against the chain that came with it, for a TLS server, and the key must be the one
the certificate certifies. A certificate that fails either is never put in place.
"""

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs.choices import Outcome, Purpose
from certs.models import Issuance
from gateway.bundle import File, Unit
from gateway.writers import shell_quote
from hosts.render import mailu, systemd
from hosts.render.context import CERTBOT_LIVE
from hosts.render.postfix import SNI_MAP

# What makes each purpose's readers take a new certificate.
RELOADS = {
    Purpose.MAIL: (systemd.reload("postfix"), systemd.reload("dovecot")),
    Purpose.GATEWAY: (systemd.reload("nginx"),),
    Purpose.MAILU: (mailu.front_restart(),),
}
# Mailu's front reads the full chain as cert.pem; chain.pem beside it is for the staged check.
MAILU_CERT, MAILU_KEY = f"{mailu.CERTS}/{mailu.CERT_FILE}", f"{mailu.CERTS}/{mailu.KEY_FILE}"
MAILU_CHAIN = f"{mailu.CERTS}/chain.pem"


def units(ctx) -> list[Unit]:
    if ctx.host.pk is None:
        return []  # an unsaved host (a preview) has no certificates yet
    current = _current(ctx.host.pk)
    if not current:
        return []
    files, checks, purposes = [], [], set()
    for issuance in current:
        purpose = issuance.certificate.purpose
        if purpose == Purpose.MAILU:
            files += _mailu_files(issuance)
            checks.append(check(MAILU_CERT, MAILU_CHAIN, MAILU_KEY))
        else:
            folder = f"{CERTBOT_LIVE}/{issuance.certificate.name}"
            files += _files(folder, issuance)
            checks.append(
                check(f"{folder}/cert.pem", f"{folder}/chain.pem", f"{folder}/privkey.pem")
            )
        purposes.add(purpose)
    return [
        Unit(
            name="certificates",
            files=tuple(files),
            checks=tuple(checks),
            activate=_activate(purposes),
        )
    ]


def _current(host_id: int) -> list[Issuance]:
    """The newest issued certificate of each of the host's certificates."""
    rows = (
        Issuance.objects.filter(certificate__host_id=host_id, outcome=Outcome.ISSUED)
        .select_related("certificate")
        .order_by("certificate__name", "-started_at", "-pk")
    )
    newest: dict[int, Issuance] = {}
    for row in rows:
        newest.setdefault(row.certificate_id, row)
    return list(newest.values())


def _files(folder: str, issuance: Issuance) -> list[File]:
    leaf, chain = split_chain(issuance.fullchain)
    return [
        File(f"{folder}/fullchain.pem", issuance.fullchain.encode()),
        File(f"{folder}/cert.pem", leaf),
        File(f"{folder}/chain.pem", chain),
        File(f"{folder}/privkey.pem", issuance.private_key.encode(), mode=0o600, secret=True),
    ]


def _mailu_files(issuance: Issuance) -> list[File]:
    leaf, chain = split_chain(issuance.fullchain)
    return [
        File(MAILU_CERT, leaf + chain),
        File(MAILU_CHAIN, chain),
        File(MAILU_KEY, issuance.private_key.encode(), mode=0o600, secret=True),
    ]


def split_chain(fullchain: str) -> tuple[bytes, bytes]:
    """The first certificate of a PEM chain, and the rest, each re-encoded from what it holds
    (so nothing but certificates passes into the files)."""
    certificates = x509.load_pem_x509_certificates(fullchain.encode())
    pems = [c.public_bytes(serialization.Encoding.PEM) for c in certificates]
    return pems[0], b"".join(pems[1:])


def check(certificate: str, chain: str, key: str) -> str:
    """Refuse a staged certificate that does not verify against its chain, or whose key is not
    the certificate's (a shell snippet, run with ``$STAGE`` set). ``certificate`` may hold the
    chain after it: openssl reads the first certificate of the file."""
    cert, ca, pkey = (f'"$STAGE"{shell_quote(path)}' for path in (certificate, chain, key))
    refuse = "{ echo %s >&2; exit 1; }"
    wrong_chain = shell_quote(f"{certificate} does not verify against {chain}.")
    wrong_key = shell_quote(f"{key} is not the key of {certificate}.")
    return "\n".join(
        [
            f"openssl verify -partial_chain -purpose sslserver -CAfile {ca} {cert} >/dev/null "
            "|| " + refuse % wrong_chain,
            f'[ "$(openssl x509 -in {cert} -noout -pubkey)" = '
            f'"$(openssl pkey -in {pkey} -pubout)" ] || ' + refuse % wrong_key,
        ]
    )


def _activate(purposes: set[str]) -> tuple[str, ...]:
    steps = []
    if Purpose.MAIL in purposes:
        # Postfix's SNI map holds the other names' certificates themselves (postmap -F).
        steps.append(f"if [ -f {SNI_MAP} ]; then postmap -F hash:{SNI_MAP}; fi")
    for purpose in sorted(purposes):
        steps += RELOADS[purpose]
    return tuple(steps)
