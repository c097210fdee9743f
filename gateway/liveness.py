"""Whether the last change to a domain, mailbox or alias is live on the hosts: pending, waiting
for the owner's approval, live, or failed, with the deployment that decided it.

What changed and when is the change log's (``gateway.audit``); what the hosts run is
``hosts``'s, which ``gateway`` may not import (docs/architecture.md). So, as with the status
probes (``gateway.status``), ``hosts`` registers the one function that answers
(``hosts.selectors.liveness``, registered by its AppConfig) and the pages and the API ask here.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import models

from gateway import audit


class State(models.TextChoices):
    PENDING = "pending", "Pending"
    WAITING = "waiting", "Waiting for approval"
    LIVE = "live", "Live"
    FAILED = "failed", "Failed"


@dataclass(frozen=True)
class Liveness:
    state: str
    pending_since: datetime | None = None  # when the change that is not live yet was made
    deployment_id: int | None = None  # it went out in, waits in, or failed in this one

    @property
    def live(self) -> bool:
        return self.state == State.LIVE


# Given each row's last change (None: before the change log), says how each stands.
Provider = Callable[[dict[int, datetime | None]], dict[int, Liveness]]
_provider: list[Provider] = []


def provider(function: Provider) -> Provider:
    """Register ``function`` as what answers; the last one registered answers."""
    _provider[:] = [function]
    return function


def of(model: type[models.Model], rows: Iterable[models.Model]) -> dict[int, Liveness]:
    """How each of ``rows`` (of ``model``) stands, by primary key: one query for any number of
    rows, plus the provider's own."""
    changed = audit.last_changes(model, [row.pk for row in rows])
    if not _provider:
        return {pk: Liveness(State.PENDING, when) for pk, when in changed.items()}
    return _provider[0](changed)
