"""``{% for kind, line in file.diff|diff_lines %}``: a unified diff's lines with their kind,
for colouring additions, removals and hunk headers."""

from django import template

register = template.Library()

_KINDS = (("+++", "file"), ("---", "file"), ("@@", "hunk"), ("+", "add"), ("-", "del"))


@register.filter
def diff_lines(diff: str) -> list[tuple[str, str]]:
    return [(_kind(line), line) for line in diff.splitlines()]


def _kind(line: str) -> str:
    return next((kind for prefix, kind in _KINDS if line.startswith(prefix)), "context")
