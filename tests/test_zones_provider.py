"""Pushing through a DNS provider's API. A public provider cannot be reached from a test, so the
one seam, ``zones.providers.ProviderZone``, is replaced by an in-memory zone; everything on
Mailgate's side of it (plan, ownership, apply) is the real code."""

import pytest
from django.core.exceptions import ValidationError

from tests.world import build_infrastructure
from zones import providers, services
from zones.models import PushTarget
from zones.providers import ProviderRecord
from zones.push import PushError

FOREIGN_TXT = ProviderRecord("TXT", "family.example", '"google-site-verification=keep"', 300)
WEBSITE = ProviderRecord("A", "www.family.example", "203.0.113.80", 300)


class MemoryZone:
    """Stands in for ``ProviderZone``: the same three methods over a list."""

    store: dict[str, list[ProviderRecord]] = {}
    opened: list[tuple] = []
    fail_with: Exception | None = None

    def __init__(self, *, provider, zone, token, username=""):
        self.records = self.store.setdefault(zone, [])
        self.opened.append((provider, zone, token, username))

    def list_records(self):
        if self.fail_with:
            raise self.fail_with
        return list(self.records)

    def create(self, record):
        self.records.append(record)

    def delete(self, record):
        self.records[:] = [
            row
            for row in self.records
            if (row.rtype, row.name, row.content) != (record.rtype, record.name, record.content)
        ]


@pytest.fixture
def zone(monkeypatch, family):
    build_infrastructure()
    monkeypatch.setattr(MemoryZone, "store", {})
    monkeypatch.setattr(MemoryZone, "opened", [])
    monkeypatch.setattr(MemoryZone, "fail_with", None)
    monkeypatch.setattr(providers, "ProviderZone", MemoryZone)
    records = MemoryZone.store.setdefault("family.example", [])
    records += [
        FOREIGN_TXT,
        WEBSITE,
        ProviderRecord("TXT", "family.example", "v=spf1 mx -all", 300),
        ProviderRecord("MX", "family.example", "old-mx.example", 300, priority=5),
    ]
    target = PushTarget(
        domain=family, kind="provider", provider="cloudflare", provider_token="cf-token-1"
    )
    target.full_clean()
    target.save()
    return records


def test_it_plans_only_what_it_manages_and_lists_what_the_api_cannot_write(family, zone):
    plan = services.push_plan(target=family.push_target)
    changes = {(c.name, c.rtype): (c.action, c.removes, c.new) for c in plan.changes}
    assert changes[("family.example", "MX")] == (
        "change",
        ["old-mx.example."],
        ("10 mail.family.example.",),
    )
    assert changes[("family.example", "TXT")] == (
        "change",
        ["v=spf1 mx -all"],
        ("v=spf1 ip4:198.51.100.1 ~all",),
    )
    assert ("www.family.example", "A") not in changes
    assert {record.rtype for record in plan.manual} == {"SRV"}


def test_it_pushes_and_leaves_every_other_record_alone(family, zone):
    services.push_apply(target=family.push_target)

    assert FOREIGN_TXT in zone and WEBSITE in zone
    mx = [row for row in zone if row.rtype == "MX"]
    assert mx == [ProviderRecord("MX", "family.example", "mail.family.example", 3600, 10)]
    spf = [row.content for row in zone if row.content.startswith("v=spf1")]
    assert spf == ["v=spf1 ip4:198.51.100.1 ~all"]
    assert not [row for row in zone if row.rtype == "SRV"]
    assert MemoryZone.opened[0] == ("cloudflare", "family.example", "cf-token-1", "")
    assert services.push_plan(target=family.push_target).changes == ()


def test_it_reports_the_providers_error(family, zone):
    MemoryZone.fail_with = RuntimeError("401 Client Error: Unauthorized")
    with pytest.raises(PushError, match="could not list the zone: 401 Client Error"):
        services.push_plan(target=family.push_target)


def test_it_refuses_an_unknown_provider_and_a_missing_token(family):
    target = PushTarget(domain=family, kind="provider", provider="nosuchdns", provider_token="x")
    with pytest.raises(ValidationError) as refused:
        target.full_clean()
    assert "provider" in refused.value.message_dict
    target = PushTarget(domain=family, kind="provider", provider="cloudflare")
    with pytest.raises(ValidationError) as refused:
        target.full_clean()
    assert "provider_token" in refused.value.message_dict
