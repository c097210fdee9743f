"""Convergence starts from the change log: whatever django-auditlog records (pages, the API,
the admin, services and workers alike) may alter a host's bundle, so each recorded change hands
over to ``services.change_committed``, which decides nothing here and queues after commit. The
only other signals in the project are the change log's own."""

from hosts import models, services

# A change to these waits for the owner on every host, automatic or not.
INFRASTRUCTURE = (models.Host, models.Relay, models.Tunnel, models.TunnelPeer)


def change_logged(sender, *, log_created: bool, **kwargs) -> None:
    """auditlog's ``post_log``: sent inside the transaction that made the change."""
    if log_created:
        services.change_committed(infrastructure=issubclass(sender, INFRASTRUCTURE))
