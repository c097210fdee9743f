"""Pushing a zone to a real authoritative BIND with RFC 2136 + TSIG, then checking it live against
the same server: the checks go green, a record changed behind Mailgate's back turns red with a
message that says what differs, and records Mailgate does not manage survive every push."""

import pytest

from tests.world import build_infrastructure
from tests.zones_named import KEY_NAME, running, zone_text
from zones import services
from zones.models import PushTarget
from zones.push import PushError
from zones.resolver import Lookup

FOREIGN_TXT = "google-site-verification=keep-me"


@pytest.fixture
def named(family, other, tmp_path):
    build_infrastructure()  # gateway 198.51.100.1, home mail server greeting as mail.family.example
    zones = {
        "family.example": zone_text(
            "family.example",
            f'@ IN TXT "{FOREIGN_TXT}"',
            '@ IN TXT "v=spf1 a -all"',  # an old SPF record: Mailgate's to replace
            "www IN A 203.0.113.80",
            "@ IN A 203.0.113.80",
        ),
        "other.example": zone_text("other.example"),
        "100.51.198.in-addr.arpa": zone_text(
            "100.51.198.in-addr.arpa", "1 IN PTR mail.family.example."
        ),
    }
    with running(tmp_path / "named", zones) as server:
        yield server


def target_for(domain, named, **changes) -> PushTarget:
    fields = {
        "kind": "rfc2136",
        "server": "127.0.0.1",
        "port": named.port,
        "tsig_key_name": KEY_NAME,
        "tsig_secret": named.secret,
        **changes,
    }
    target = PushTarget(domain=domain, **fields)
    target.full_clean()
    target.save()
    return target


def failures(run) -> list[tuple]:
    return [(r.name, r.rtype, r.message) for r in run.results.filter(status="fail")]


def test_it_pushes_and_then_every_check_is_green(family, named):
    services.dkim_key_generate(domain=family)
    target = target_for(family, named)
    plan = services.push_plan(target=target)
    assert plan.changes and plan.manual == ()
    assert {change.action for change in plan.changes} <= {"add", "change"}
    spf = next(c for c in plan.changes if c.name == "family.example" and c.rtype == "TXT")
    assert spf.action == "change"
    assert spf.removes == ["v=spf1 a -all"]  # only the old SPF value, never the verification
    assert spf.new == ("v=spf1 ip4:198.51.100.1 ~all",)

    services.push_apply(target=target, digest=plan.digest)
    run = services.check_run(domain=family, lookup=named.lookup)

    assert failures(run) == []
    assert run.passed >= 20
    statuses = {(r.kind, r.name): r.status for r in run.results.all()}
    assert statuses[("fcrdns", "198.51.100.1")] == "ok"
    assert statuses[("helo", "198.51.100.1")] == "ok"
    assert run.dnssec == "unsigned"
    assert services.push_plan(target=target).changes == ()


def test_it_turns_a_record_changed_behind_its_back_red_and_says_how(family, named):
    target = target_for(family, named)
    services.push_apply(target=target)
    named.edit("family.example", "mail.family.example", "A", "203.0.113.66")
    named.edit("family.example", "_dmarc.family.example", "TXT", '"v=DMARC1; p=none"')

    run = services.check_run(domain=family, lookup=named.lookup)

    wrong = {(r.name, r.rtype): r for r in run.results.filter(status="fail")}
    a_record = wrong[("mail.family.example", "A")]
    assert a_record.message == "mail.family.example A is “203.0.113.66” instead of “198.51.100.1”."
    assert "mail.family.example. 3600 IN A 198.51.100.1" in a_record.fix
    assert "zone family.example" in a_record.fix
    dmarc = wrong[("_dmarc.family.example", "TXT")]
    assert "“v=DMARC1; p=none”" in dmarc.message
    assert "p=quarantine" in dmarc.fix
    fcrdns = run.results.get(kind="fcrdns")
    assert fcrdns.status == "fail"
    assert "does not hold 198.51.100.1" in fcrdns.message

    plan = services.push_plan(target=target)
    changed = {(c.name, c.rtype): (c.removes, c.new) for c in plan.changes}
    assert changed == {
        ("mail.family.example", "A"): (["203.0.113.66"], ("198.51.100.1",)),
        ("_dmarc.family.example", "TXT"): (
            ["v=DMARC1; p=none"],
            ("v=DMARC1; p=quarantine; rua=mailto:postmaster@family.example; adkim=s; aspf=s",),
        ),
    }
    services.push_apply(target=target, digest=plan.digest)
    assert failures(services.check_run(domain=family, lookup=named.lookup)) == []


def test_it_never_touches_records_it_does_not_manage(family, named):
    target = target_for(family, named)
    services.push_apply(target=target)
    named.edit("family.example", "blog.family.example", "CNAME", "example.net.")
    services.dkim_key_generate(domain=family)
    services.push_apply(target=target)

    assert named.values("family.example", "TXT") == [FOREIGN_TXT, "v=spf1 ip4:198.51.100.1 ~all"]
    assert named.values("www.family.example", "A") == ["203.0.113.80"]
    assert named.values("family.example", "A") == ["203.0.113.80"]
    assert named.values("blog.family.example", "CNAME") == ["example.net."]
    assert named.values("family.example", "MX") == ["10 mail.family.example."]


def test_it_refuses_a_push_whose_plan_changed_since_it_was_shown(family, named):
    target = target_for(family, named)
    shown = services.push_plan(target=target)
    named.edit("family.example", "mail.family.example", "A", "203.0.113.66")
    with pytest.raises(Exception, match="changed since the plan was shown"):
        services.push_apply(target=target, digest=shown.digest)
    assert named.values("family.example", "MX") == []


def test_it_says_when_the_server_refuses_the_tsig_key(family, named):
    target = target_for(family, named, tsig_secret="c2VjcmV0IHRoYXQgaXMgbm90IHRoZSBrZXkgYXQgYWxs")
    with pytest.raises(PushError, match="refused the TSIG key 'mailgate-test'"):
        services.push_apply(target=target)
    assert named.values("family.example", "MX") == []


def test_it_says_when_the_server_cannot_be_reached(family, named):
    target = target_for(family, named, port=1)
    with pytest.raises(PushError, match=r"Cannot read the zone: 127\.0\.0\.1:1 did not answer"):
        services.push_plan(target=target)


def test_it_reports_an_unreachable_resolver_as_red(family, named):
    run = services.check_run(domain=family, lookup=Lookup([("127.0.0.1", 1)], timeout=0.5))
    record = run.results.filter(kind="record").first()
    assert record.status == "fail"
    assert record.message.startswith("Could not check: ")
    assert not run.ok


def test_it_asks_a_silent_resolver_once_and_fails_every_record_with_that_reason(family, named):
    asked = []

    class CountingLookup(Lookup):
        def query(self, name, rtype, **options):
            asked.append((name, rtype))
            return super().query(name, rtype, **options)

    run = services.check_run(domain=family, lookup=CountingLookup([("127.0.0.1", 1)], timeout=0.5))
    records = run.results.filter(kind="record")
    assert asked == [("family.example", "SOA")]
    assert records.count() > 5
    assert all("no answer within 0.5 s" in result.message for result in records)
