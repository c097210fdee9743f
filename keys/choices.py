from django.db import models


class Validity(models.TextChoices):
    """gpg's validity letters (``--with-colons``, field 2), as Mailgate's keyring computes them."""

    UNKNOWN = "-", "Unknown"
    UNDEFINED = "q", "Undefined"
    NEW = "o", "Not checked yet"
    INVALID = "i", "Invalid"
    DISABLED = "d", "Disabled"
    REVOKED = "r", "Revoked"
    EXPIRED = "e", "Expired"
    NEVER = "n", "Not valid"
    MARGINAL = "m", "Marginal"
    FULL = "f", "Full"
    ULTIMATE = "u", "Ultimate"


class WkdStatus(models.TextChoices):
    PUBLISHED = "published", "Published"
    NOT_PUBLISHED = "not-published", "Not published"
    EXPIRED = "expired", "Expired (no longer published)"


class AlertKind(models.TextChoices):
    EXPIRED = "expired", "Certification expired"
    EXPIRING = "expiring", "Certification expires soon"
