"""Reads of keys for the gateway's bundle."""

from django.db.models import Q
from django.utils import timezone

from keys.models import OpenPGPKey


def wkd_keys(domains: set[str]) -> dict[tuple[str, str], bytes]:
    """The WKD answer of every mailbox of ``domains`` with a published key: its unexpired
    keys, concatenated as WKD allows, newest first. One query for all domains."""
    now = timezone.now()
    rows = (
        OpenPGPKey.objects.filter(
            published=True,
            mailbox__enabled=True,
            mailbox__domain__enabled=True,
            mailbox__domain__name__in=domains,
        )
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .exclude(wkd_key=b"")
        .order_by("mailbox__domain__name", "mailbox__local_part", "-created_at", "pk")
        .values_list("mailbox__local_part", "mailbox__domain__name", "wkd_key")
    )
    answers: dict[tuple[str, str], bytes] = {}
    for local, domain, key in rows:
        answers[(local, domain)] = answers.get((local, domain), b"") + bytes(key)
    return answers
