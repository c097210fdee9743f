"""The DNS app from the browser, the API, ``manage.py dns`` and Celery beat, against a real BIND
that the checks ask (``MAILGATE_DNS_RESOLVER``) and the pushes update."""

import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.urls import reverse

from tests.shared import ROOT
from tests.world import build_infrastructure
from tests.zones_named import KEY_NAME, running, zone_text
from zones.models import CheckRun, DkimKey, PushTarget, ZoneSettings


@pytest.fixture
def named(family, other, tmp_path, settings):
    build_infrastructure()
    zones = {
        "family.example": zone_text("family.example"),
        "other.example": zone_text("other.example"),
        "100.51.198.in-addr.arpa": zone_text(
            "100.51.198.in-addr.arpa", "1 IN PTR mail.family.example."
        ),
    }
    with running(tmp_path / "named", zones) as server:
        settings.MAILGATE_DNS_RESOLVER = f"127.0.0.1:{server.port}"
        for domain in (family, other):
            PushTarget.objects.create(
                domain=domain,
                server="127.0.0.1",
                port=server.port,
                tsig_key_name=KEY_NAME,
                tsig_secret=server.secret,
            )
        yield server


def test_the_pages_show_red_then_push_then_green(client, alice, family, named):
    client.force_login(alice)
    page = reverse("zones:dns-domain", args=[family.pk])
    client.post(reverse("zones:dns-check", args=[family.pk]))
    shown = client.get(page).content.decode()
    assert "family.example has no MX record." in shown
    assert "Add “family.example. 3600 IN MX 10 mail.family.example.”" in shown

    plan = client.get(reverse("zones:dns-push", args=[family.pk]))
    assert "Push these" in plan.content.decode()
    digest = plan.context["plan"].digest
    pushed = client.post(reverse("zones:dns-push", args=[family.pk]), {"digest": digest})
    assert pushed.status_code == 302
    response = client.post(reverse("zones:dns-check", args=[family.pk]), follow=True)
    assert "checks of family.example passed" in response.content.decode()
    assert named.values("family.example", "MX") == ["10 mail.family.example."]


def test_the_zone_file_downloads(client, alice, family, named):
    client.force_login(alice)
    response = client.get(reverse("zones:dns-zone-file", args=[family.pk]))
    assert response["Content-Disposition"] == 'attachment; filename="family.example.zone"'
    assert b"family.example. 3600 IN MX 10 mail.family.example." in response.content


def test_the_settings_and_push_target_pages_keep_the_secret(client, alice, family, named):
    client.force_login(alice)
    form = client.get(reverse("zones:dns-push-target", args=[family.pk])).content.decode()
    assert named.secret not in form and "Set. Leave empty to keep it" in form
    response = client.post(
        reverse("zones:dns-settings", args=[family.pk]),
        {"ttl": 600, "dmarc_policy": "reject", "mta_sts_mode": "enforce", "mta_sts_max_age": 86400},
    )
    assert response.status_code == 302, response.context["form"].errors
    assert ZoneSettings.objects.get(domain=family).dmarc_policy == "reject"


def test_the_api_checks_plans_and_pushes(api, alice, family, named):
    client = api(alice)
    zone = client.get(f"/api/dns-zones/{family.pk}/").json()
    mx = next(r for r in zone["records"] if r["type"] == "MX")
    assert mx == {
        "name": "family.example",
        "type": "MX",
        "ttl": 3600,
        "values": ["10 mail.family.example."],
        "purpose": "MX: mail goes to the gateway",
        "zone": "family.example",
        "reverse": False,
    }
    check = client.post(f"/api/dns-zones/{family.pk}/check/")
    assert check.status_code == 201 and check.json()["ok"] is False
    plan = client.get(f"/api/dns-zones/{family.pk}/plan/").json()
    assert {change["action"] for change in plan["changes"]} == {"add"}
    stale = client.post(f"/api/dns-zones/{family.pk}/push/", {"digest": "0" * 16}, format="json")
    assert stale.status_code == 400
    pushed = client.post(f"/api/dns-zones/{family.pk}/push/", {"digest": plan["digest"]})
    assert pushed.status_code == 200, pushed.json()
    check = client.post(f"/api/dns-zones/{family.pk}/check/").json()
    assert check["ok"] is True, [r for r in check["results"] if r["status"] == "fail"]
    history = client.get(f"/api/dns-checks/?domain={family.pk}").json()
    assert [run["ok"] for run in history["results"]] == [True, False]
    text = client.get(f"/api/dns-zones/{family.pk}/zone-file/")
    assert text["Content-Type"].startswith("text/plain")


def test_manage_py_dns_check_fails_then_passes_after_a_push(capsys, family, named):
    with pytest.raises(CommandError, match=r"\d+ ok, \d+ wrong"):
        call_command("dns", "check", "family.example")
    assert "FAIL family.example MX" in capsys.readouterr().out
    call_command("dns", "push", "family.example")
    call_command("dns", "check", "family.example", "--resolver", f"127.0.0.1:{named.port}")
    out = capsys.readouterr().out
    assert "ok   family.example MX" in out and " 0 wrong" in out
    call_command("dns", "dkim", "family.example", "generate", "--selector", "s1")
    assert "s1._domainkey.family.example: active" in capsys.readouterr().out
    call_command("dns", "plan", "family.example")
    assert "add     s1._domainkey.family.example TXT" in capsys.readouterr().out


def test_celery_beat_schedules_the_periodic_check():
    entry = django_settings.CELERY_BEAT_SCHEDULE["zones-check-all-domains"]
    assert entry == {"task": "zones.tasks.check_all_domains", "schedule": 3600}


@pytest.mark.django_db(transaction=True)
def test_beat_and_a_worker_check_every_domain_periodically(start_worker, family, named, tmp_path):
    variables = {"MAILGATE_DNS_RESOLVER": f"127.0.0.1:{named.port}"}
    start_worker(**variables)
    beat = start_beat(tmp_path, MAILGATE_DNS_CHECK_INTERVAL="1", **variables)
    try:
        deadline = time.monotonic() + 60
        while CheckRun.objects.filter(trigger="schedule").values("domain").distinct().count() < 2:
            assert time.monotonic() < deadline, "no scheduled check within 60 s"
            time.sleep(0.3)
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        print(beat.communicate(timeout=30)[0])
    run = CheckRun.objects.filter(domain=family, trigger="schedule").first()
    assert run.resolver == f"127.0.0.1:{named.port}"
    assert run.results.exists()


def start_beat(tmp_path, **variables) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "gateway", "beat", "-l", "INFO"]
    command += ["-s", str(tmp_path / "beat-schedule"), "--pidfile", str(tmp_path / "beat.pid")]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "MAILGATE_DATA_DIR": str(tmp_path), **variables},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_the_list_and_the_check_pages_show_each_check(client, owner, family, named):
    client.force_login(owner)
    client.post(reverse("zones:dns-check", args=[family.pk]))
    listing = client.get(reverse("zones:dns-list")).content.decode()
    assert "family.example" in listing and " wrong</mark>" in listing
    run = CheckRun.objects.get(domain=family)
    detail = client.get(reverse("zones:dns-check-detail", args=[run.pk])).content.decode()
    assert "family.example has no MX record." in detail
    assert f"127.0.0.1:{named.port}" in detail


def test_the_domain_page_says_what_is_missing_before_the_hosts_exist(client, owner, family):
    client.force_login(owner)
    page = client.get(reverse("zones:dns-domain", args=[family.pk])).content.decode()
    assert "There is no gateway host yet" in page
    assert "Not checked yet." in page


def test_dkim_rotation_from_the_page(client, alice, family):
    client.force_login(alice)
    generate = reverse("zones:dkim-generate", args=[family.pk])
    client.post(generate, {"selector": ""})
    client.post(generate, {"selector": "next"})
    old, new = DkimKey.objects.order_by("created_at")
    assert client.post(generate, {"selector": "Bad Selector"}).status_code == 302
    assert DkimKey.objects.count() == 2
    client.post(reverse("zones:dkim-retire", args=[old.pk]))  # refused: it still signs
    client.post(reverse("zones:dkim-activate", args=[new.pk]))
    client.post(reverse("zones:dkim-retire", args=[old.pk]))
    page = client.get(reverse("zones:dns-domain", args=[family.pk])).content.decode()
    assert "(must be removed)" in page  # the retired selector's record
    client.post(reverse("zones:dkim-forget", args=[old.pk]))
    assert list(DkimKey.objects.values_list("selector", "active")) == [("next", True)]
