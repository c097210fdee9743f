"""Who may see and change which rows: the one place the UI and the API both ask.

The owner (a superuser) sees everything. A domain manager sees and changes the mailboxes,
aliases and keys of the domains they manage. A mailbox owner sees their own mailbox (and may
change its password). Everybody else sees nothing.
"""

from django.db import models


class ScopedQuerySet(models.QuerySet):
    """A queryset that knows which of its rows a user may read and which they may change."""

    def visible_to(self, user) -> models.QuerySet:
        if not (user.is_authenticated and user.is_active):
            return self.none()
        if user.is_superuser:
            return self
        return self.filter(self.read_scope(user))

    def manageable_by(self, user) -> models.QuerySet:
        if not (user.is_authenticated and user.is_active):
            return self.none()
        if user.is_superuser:
            return self
        return self.filter(self.write_scope(user))

    def read_scope(self, user) -> models.Q:
        return self.write_scope(user)

    def write_scope(self, user) -> models.Q:
        """Infrastructure (hosts, relays, tunnels, deployments) belongs to the owner alone."""
        return models.Q(pk__in=[])


def managed_domain_ids(user) -> models.QuerySet:
    from gateway.models import Domain

    return Domain.managers.through.objects.filter(user=user).values("domain_id")


class DomainScopedQuerySet(ScopedQuerySet):
    """Rows that belong to a domain through ``domain_lookup``; its managers may change them."""

    domain_lookup = "domain"

    def write_scope(self, user) -> models.Q:
        return models.Q(**{f"{self.domain_lookup}__in": managed_domain_ids(user)})
