"""Each mailbox's storage in use, as the mail server counts it (docs/mailbox-features.md, the
table's ``quota_used_bytes``): parsed from ``doveadm quota get -A`` and Mailu's own count, stored
without a change-log entry (no deployment follows), shown beside the quota on the pages and in the
API."""

from datetime import UTC, datetime

from auditlog.models import LogEntry
from django.urls import reverse

from gateway.models import AppPassword
from gateway.services import app_passwords_mark_used, mailbox_usage_store
from hosts import usage
from tests.helpers import page_url

# As Dovecot 2.3.19 prints it for a mailbox with a 3 KiB message and a 100 MiB quota, and one
# without a quota (doveadm -f tab quota get -A on a passwd-file userdb with the quota plugin).
DOVEADM_OUTPUT = (
    "Username\tQuota name\tType\tValue\tLimit\t%\n"
    "carol@family.example\tUser quota\tSTORAGE\t3\t102400\t0\n"
    "carol@family.example\tUser quota\tMESSAGE\t1\t-\t0\n"
    "alice@family.example\tUser quota\tSTORAGE\t0\t-\t0\n"
    "alice@family.example\tUser quota\tMESSAGE\t0\t-\t0\n"
)


def test_it_reads_dovecots_storage_in_kibibytes():
    assert usage.parse_doveadm(DOVEADM_OUTPUT) == {
        "carol@family.example": 3 * 1024,
        "alice@family.example": 0,
    }


def test_it_reads_mailus_count():
    output = "carol@family.example\t52428800\nnoise\nbob@other.example\tx\n"
    assert usage.parse_mailu(output) == {"carol@family.example": 52428800}


def test_it_stores_the_count_without_a_change(api, client, carol, family):
    carols = family.mailboxes.get(local_part="carol")
    before = LogEntry.objects.count()
    counts = usage.parse_doveadm(DOVEADM_OUTPUT) | {"nobody@family.example": 1}
    assert mailbox_usage_store(counts=counts) == 2
    assert LogEntry.objects.count() == before
    data = api(carol).get(f"/api/mailboxes/{carols.pk}/").json()
    assert data["quota_used_bytes"] == 3072 and data["quota_read_at"]
    client.force_login(carol)
    page = client.get(reverse("gateway:mailbox-settings", args=[carols.pk])).content.decode()
    assert "0.0 MB (no quota)" in page


def test_the_list_shows_use_beside_the_quota(client, alice, family):
    family.mailboxes.filter(local_part="alice").update(quota_mb=100)
    mailbox_usage_store(counts={"alice@family.example": 50 * 1024 * 1024})
    client.force_login(alice)
    page = client.get(page_url(family.mailboxes.model, "list")).content.decode()
    assert "50.0 MB of 100 MB" in page
    assert "not counted yet (no quota)" in page


# As Dovecot 2.3.19's last_login plugin writes its file dict (tests/test_render_mailbox_features.py
# makes one with a real IMAP login): a key line, a value line.
LAST_LOGIN = (
    "shared/mailgate-device/none\n1764680000\n"
    "shared/mailgate-device/{pk}\n1764689000\n"
    "shared/mailgate-device/x\n1\n"
    "shared/other/7\n1\n"
)


def test_a_device_passwords_last_use_is_stored_without_a_change(api, carol, family):
    carols = family.mailboxes.get(local_part="carol")
    row, _ = AppPassword.issue(mailbox=carols, name="Phone")
    used = usage.parse_last_login(LAST_LOGIN.format(pk=row.pk))
    assert used == {row.pk: datetime.fromtimestamp(1764689000, tz=UTC)}
    before = LogEntry.objects.count()
    assert app_passwords_mark_used(used=used) == 1
    assert LogEntry.objects.count() == before
    # An older report changes nothing; a row that is gone is skipped.
    assert app_passwords_mark_used(used={row.pk: datetime(2020, 1, 1, tzinfo=UTC)}) == 0
    assert app_passwords_mark_used(used={row.pk + 1000: datetime.now(UTC)}) == 0
    listed = api(carol).get("/api/app-passwords/").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert [r["last_used_at"] for r in rows] == ["2025-12-02T15:23:20Z"]


# Logins as Mailu 2024.06's admin logs them (core/admin/mailu/internal/nginx.py, in Flask's
# default format): with a token (its comment is the device password's name), with the password,
# and a failure.
MAILU_LOG = (
    "[2026-12-02 15:07:38,392] INFO in nginx: Login attempt for: Carol@family.example/imap/993 "
    "from: 203.0.113.1/40000: success: token-3: 'Phone'\n"
    "[2026-12-02 15:09:00,001] INFO in nginx: Login attempt for: carol@family.example/smtp/465 "
    "from: 203.0.113.1/40002: success: token-4: 'Phone'\n"
    "[2026-12-02 15:10:00,001] INFO in nginx: Login attempt for: carol@family.example/imap/993 "
    "from: 203.0.113.1/40003: success: password\n"
    "[2026-12-02 15:11:00,001] INFO in nginx: Login attempt for: carol@family.example/imap/993 "
    "from: 203.0.113.1/40004: failed: badauth: 1234\n"
)


def test_mailus_log_says_when_a_device_password_was_last_used(carol, family):
    carols = family.mailboxes.get(local_part="carol")
    row, _ = AppPassword.issue(mailbox=carols, name="Phone")
    other, _ = AppPassword.issue(mailbox=carols, name="Laptop")
    used = usage.parse_mailu_log(MAILU_LOG)
    assert used == {("carol@family.example", "Phone"): datetime(2026, 12, 2, 15, 9, tzinfo=UTC)}
    assert app_passwords_mark_used(used=used) == 1
    row.refresh_from_db()
    other.refresh_from_db()
    assert row.last_used_at == datetime(2026, 12, 2, 15, 9, tzinfo=UTC)
    assert other.last_used_at is None
