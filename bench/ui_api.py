"""Latency of the main pages and API lists with a large family: 1,000 domains, 10,000
mailboxes, 20,000 aliases, and a status page with two items per domain and their history.

    .venv/bin/python bench/ui_api.py [--requests N] [--database-url URL]

Requests go through Django's test client in this process (the whole stack but the network):
each URL ``--requests`` times, as the owner, after one warm-up. Prints p50 and p95 per URL and
the queries each made. Default database: a throwaway SQLite file; pass a PostgreSQL URL (an
empty database you can drop) to measure the production shape. Goal: p95 under 100 ms.
"""

import argparse
import shutil
import statistics
import time

import panel

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--requests", type=int, default=50)
parser.add_argument("--database-url", help="instead of SQLite in the benchmark's folder")
OPTIONS = parser.parse_args()
WORK = panel.setup(
    DJANGO_SETTINGS_MODULE="tests.settings",  # static files served from the source tree
    ALLOWED_HOSTS="testserver",
    **({"DATABASE_URL": OPTIONS.database_url} if OPTIONS.database_url else {}),
)

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from gateway.models import Alias, ApiToken, Domain, Mailbox, StatusChange, StatusItem

HASH = "{BLF-CRYPT}$2b$04$pgh9Q.MzFFKMHJaF8bCa3unoZJnX/hJ6X2TKIDfR2.yaBQRcWQ2vC"
PAGES = ["/", "/domains/", "/mailboxes/", "/aliases/", "/hosts/", "/deployments/", "/status/"]
API = [
    "/api/domains/",
    "/api/mailboxes/",
    "/api/aliases/",
    "/api/hosts/",
    "/api/deployments/",
    "/api/status/",
    "/api/status-changes/",
]


def seed() -> None:
    Domain.objects.bulk_create(
        Domain(name=f"family{n}.example", mail_hostname="mail.example.com") for n in range(1000)
    )
    ids = list(Domain.objects.values_list("pk", flat=True))
    Mailbox.objects.bulk_create(
        Mailbox(domain_id=pk, local_part=f"user{m}", password_hash=HASH)
        for pk in ids
        for m in range(10)
    )
    Alias.objects.bulk_create(
        Alias(domain_id=pk, local_part=f"alias{a}", destinations=[f"user{a % 10}@x.example"])
        for pk in ids
        for a in range(20)
    )
    now = timezone.now()
    StatusItem.objects.bulk_create(
        StatusItem(
            key=f"{probe}:{pk}",
            probe=probe,
            section=probe.upper(),
            label=f"family{n}.example",
            colour="amber" if n % 7 else "green",
            message="Two records differ from what Mailgate expects.",
            fix="Push the DNS plan.",
            domain_id=pk,
            checked_at=now,
            changed_at=now,
        )
        for n, pk in enumerate(ids)
        for probe in ("dns", "keys")
    )
    StatusChange.objects.bulk_create(
        StatusChange(
            key=f"dns:{pk}", label="DNS", domain_id=pk, before="green", after="amber", at=now
        )
        for pk in ids
    )


def measure(client: Client, url: str, headers: dict) -> tuple[float, float, int]:
    client.get(url, **headers)  # warm-up
    timings = []
    for _ in range(OPTIONS.requests):
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            response = client.get(url, **headers)
            timings.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
    cuts = statistics.quantiles(timings, n=100)
    return cuts[49], cuts[94], len(queries)


def main() -> None:
    call_command("migrate", verbosity=0)
    seed()
    owner = get_user_model().objects.create_superuser("owner", "", "bench-password")
    _, token = ApiToken.issue(user=owner, name="bench")
    client = Client()
    client.force_login(owner)
    print(
        f"{Domain.objects.count()} domains, {Mailbox.objects.count()} mailboxes, "
        f"{Alias.objects.count()} aliases on {connection.vendor}; {OPTIONS.requests} requests each"
    )
    print(f"{'URL':22} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8}")
    worst = 0.0
    for url, headers in [(u, {}) for u in PAGES] + [
        (u, {"HTTP_AUTHORIZATION": f"Token {token}"}) for u in API
    ]:
        p50, p95, queries = measure(client, url, headers)
        worst = max(worst, p95)
        print(f"{url:22} {p50:8.1f} {p95:8.1f} {queries:8}")
    print(f"worst p95: {worst:.1f} ms (goal: under 100 ms)")


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
