from django.apps import AppConfig


class LabConfig(AppConfig):
    """The gateway lab: the reference setup (docs/reference-setups.md) built in network namespaces
    on this machine."""

    name = "lab"
