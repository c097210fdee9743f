"""Filters of the API lists: what a script asks for by name, e.g.
``/api/mailboxes/?domain=family.example&enabled=false`` or ``?search=alice`` (DRF's search, over
each viewset's ``search_fields``). A filter only narrows the rows the user may see (the viewsets'
querysets are scoped first), and a domain is named, not numbered: a filter never tells whether a
domain the user may not see exists."""

from django import forms
from django_filters import rest_framework as filters

from gateway.models import Alias, Domain, Mailbox


def domain_name(field_name: str = "domain__name") -> filters.CharFilter:
    return filters.CharFilter(field_name=field_name, help_text="The domain, e.g. family.example.")


class IdFilter(filters.NumberFilter):
    """A row's id: a whole number (``²`` and ``1.5`` are refused with 400; one past any id, such
    as 23 digits, finds nothing), where NumberFilter's decimals would round."""

    field_class = forms.IntegerField


class DomainFilter(filters.FilterSet):
    class Meta:
        model = Domain
        fields = ["enabled"]


class MailboxFilter(filters.FilterSet):
    domain = domain_name()

    class Meta:
        model = Mailbox
        fields = ["domain", "enabled"]


class AliasFilter(filters.FilterSet):
    domain = domain_name()

    class Meta:
        model = Alias
        fields = ["domain", "enabled", "allowed_as_sender"]
