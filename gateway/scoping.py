"""Who may see and change which rows: the one place the UI and the API both ask.

The owner (a superuser) sees everything. A domain manager sees and changes the mailboxes,
aliases and keys of the domains they manage. A mailbox owner sees their own mailbox (and may
change its password). Everybody else sees nothing.

An API token may narrow its user further to some domains (``token_domain_ids``, set on the
request's user by the token authentication): then only rows of those domains are seen, and the
infrastructure (hosts, tunnels, deployments) not at all, even for the owner. A limited token
whose domains were all deleted has an empty list: it sees nothing.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import user_passes_test
from django.db import models


class ScopedQuerySet(models.QuerySet):
    """A queryset that knows which of its rows a user may read and which they may change."""

    def visible_to(self, user) -> models.QuerySet:
        if not (user.is_authenticated and user.is_active):
            return self.none()
        rows = self if user.is_superuser else self.filter(self.read_scope(user))
        return rows._within_token(user)

    def manageable_by(self, user) -> models.QuerySet:
        if not (user.is_authenticated and user.is_active):
            return self.none()
        rows = self if user.is_superuser else self.filter(self.write_scope(user))
        return rows._within_token(user)

    def _within_token(self, user) -> models.QuerySet:
        if not limited_by_token(user):
            return self
        return self.filter(self.domain_scope(user.token_domain_ids))

    def domain_scope(self, domain_ids) -> models.Q:
        """The rows that belong to these domains: none of the infrastructure does."""
        return models.Q(pk__in=[])

    def read_scope(self, user) -> models.Q:
        return self.write_scope(user)

    def write_scope(self, user) -> models.Q:
        """Infrastructure (hosts, relays, tunnels, deployments) belongs to the owner alone."""
        return models.Q(pk__in=[])


def limited_by_token(user) -> bool:
    """Whether the request came with a token limited to domains (even to none left)."""
    return getattr(user, "token_domain_ids", None) is not None


# A page for the owner alone; anybody else is sent to the login page.
owner_required = user_passes_test(lambda user: user.is_superuser)


def acts_as_owner(user) -> bool:
    """The owner, not narrowed by a domain-scoped API token: may touch the infrastructure."""
    return user.is_superuser and not limited_by_token(user)


def managed_domain_ids(user) -> models.QuerySet:
    from gateway.models import Domain

    return Domain.managers.through.objects.filter(user=user).values("domain_id")


class DomainScopedQuerySet(ScopedQuerySet):
    """Rows that belong to a domain through ``domain_lookup``; its managers may change them."""

    domain_lookup = "domain"

    def write_scope(self, user) -> models.Q:
        return models.Q(**{f"{self.domain_lookup}__in": managed_domain_ids(user)})

    def domain_scope(self, domain_ids) -> models.Q:
        return models.Q(**{f"{self.domain_lookup}__in": domain_ids})


def visible_users(user) -> models.QuerySet:
    """The panel accounts ``user`` may see in a choice: all of them for the owner, otherwise
    only themselves (a manager must not learn the other accounts' names)."""
    users = get_user_model().objects.all()
    return users if acts_as_owner(user) else users.filter(pk=user.pk)


def choices_for(queryset: models.QuerySet, user) -> models.QuerySet:
    """The rows of a form's or serializer's choice that ``user`` may pick from."""
    if queryset.model is get_user_model():
        return visible_users(user)
    return queryset.visible_to(user) if hasattr(queryset, "visible_to") else queryset
