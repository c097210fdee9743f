"""The DNS probe of the status page (found by ``gateway.status``): per
enabled domain, the verdict of its latest stored check. The checks themselves run on their own
schedule (``zones.tasks.check_all_domains``) and keep their history; this only reads them."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from gateway.models import Domain
from gateway.status import Colour, Finding, probe
from zones.choices import CheckStatus
from zones.models import CheckResult, CheckRun
from zones.selectors import with_latest_check

STALE_AFTER = 3  # scheduled check intervals without a check


@probe("dns")
def domain_findings():
    rows = with_latest_check(Domain.objects.filter(enabled=True).order_by("name"))
    problems = _first_problems([run.pk for _, run in rows if run is not None])
    for domain, run in rows:
        yield _finding(domain, run, problems.get(run.pk) if run else None)


def _first_problems(run_ids: list[int]) -> dict[int, CheckResult]:
    """Each run's first wrong result, or else its first warning (one query)."""
    results = CheckResult.objects.filter(
        run_id__in=run_ids, status__in=[CheckStatus.FAIL, CheckStatus.WARN]
    ).order_by("run_id", "position")
    first: dict[int, CheckResult] = {}
    for result in results:
        current = first.get(result.run_id)
        if current is None or (current.status, result.status) == (
            CheckStatus.WARN,
            CheckStatus.FAIL,
        ):
            first[result.run_id] = result
    return first


def _finding(domain: Domain, run: CheckRun | None, problem: CheckResult | None) -> Finding:
    finding = {
        "key": f"dns:{domain.pk}",
        "section": "DNS",
        "label": f"{domain}: DNS records",
        "domain_id": domain.pk,
    }
    if run is None:
        return Finding(
            **finding,
            colour=Colour.AMBER,
            message="Never checked.",
            fix=f"Open DNS → {domain} and run a check.",
        )
    when = f"checked {run.started_at:%Y-%m-%d %H:%M}"
    if problem is not None:
        colour = Colour.RED if problem.status == CheckStatus.FAIL else Colour.AMBER
        counts = f"{run.failed} wrong, {run.warnings} warning(s)"
        return Finding(
            **finding,
            colour=colour,
            message=f"{counts}, {when}; first: {problem.message}",
            fix=problem.fix,
        )
    stale = timedelta(seconds=STALE_AFTER * settings.MAILGATE_DNS_CHECK_INTERVAL)
    if timezone.now() - run.started_at > stale:
        return Finding(
            **finding,
            colour=Colour.AMBER,
            message=f"All {run.passed} records were right when last {when}.",
            fix="The scheduled checks are not running: start Celery beat.",
        )
    return Finding(
        **finding, colour=Colour.GREEN, message=f"All {run.passed} records right, {when}."
    )
