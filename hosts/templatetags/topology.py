from django import template
from django.utils.safestring import mark_safe

from gateway.scoping import acts_as_owner
from hosts.topology import topology_load, topology_svg

register = template.Library()


@register.simple_tag(takes_context=True)
def topology(context) -> str:
    """The topology picture for the owner; nothing for anyone else (hosts are the owner's)."""
    if not acts_as_owner(context["user"]):
        return ""
    # Safe: the SVG is serialized by ElementTree, which escapes every name it holds.
    return mark_safe(topology_svg(topology_load()))  # noqa: S308
