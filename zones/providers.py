"""The one seam between Mailgate and DNS providers' HTTP APIs, through dns-lexicon.

Everything else in Mailgate speaks ``ProviderRecord`` to ``ProviderZone``; only this class knows
lexicon. Tests replace ``ProviderZone`` with an in-memory zone (a public provider cannot be
reached from a test), so the push logic is tested and this adapter stays small.

Lexicon's common interface carries a record as (type, name, content) plus a TTL and, for MX, a
``priority`` option; it has no fields for SRV or TLSA data, which Mailgate therefore does not
push through a provider (the plan lists them to add by hand).
"""

import importlib.util
from dataclasses import dataclass

PUSHABLE_TYPES = ("A", "AAAA", "CNAME", "MX", "TXT")


@dataclass(frozen=True)
class ProviderRecord:
    """A record as providers hold it: TXT content unquoted and whole, MX content the target
    with the priority apart, names absolute without the final dot."""

    rtype: str
    name: str
    content: str
    ttl: int = 0
    priority: int | None = None


def provider_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(f"lexicon._private.providers.{name}") is not None
    except ModuleNotFoundError:
        return False


class ProviderZone:
    """A zone at a DNS provider: list, create and delete records."""

    def __init__(self, *, provider: str, zone: str, token: str, username: str = ""):
        self.provider = provider
        self.zone = zone
        self.credentials = {"auth_token": token}
        if username:
            self.credentials["auth_username"] = username

    def _client(self, **options):
        from lexicon.client import Client
        from lexicon.config import ConfigResolver

        config = ConfigResolver().with_dict(
            {
                "provider_name": self.provider,
                "domain": self.zone,
                "delegated": self.zone,  # the zone is known: no public-suffix guessing
                self.provider: self.credentials,
                **options,
            }
        )
        return Client(config)

    def list_records(self) -> list[ProviderRecord]:
        with self._client() as operations:
            rows = operations.list_records()
        return [
            ProviderRecord(
                rtype=row["type"],
                name=str(row["name"]).rstrip(".").lower(),
                content=str(row["content"]),
                ttl=int(row.get("ttl") or 0),
                priority=(row.get("options", {}).get("mx", {}) or {}).get("priority"),
            )
            for row in rows
        ]

    def create(self, record: ProviderRecord) -> None:
        options = {"ttl": record.ttl} if record.ttl else {}
        if record.priority is not None:
            options["priority"] = str(record.priority)
        with self._client(**options) as operations:
            operations.create_record(record.rtype, record.name, record.content)

    def delete(self, record: ProviderRecord) -> None:
        with self._client() as operations:
            operations.delete_record(None, record.rtype, record.name, record.content)
