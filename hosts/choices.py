from django.db import models


class MailBackend(models.TextChoices):
    MAILU = "mailu", "Mailu (Docker)"
    POSTFIX_DOVECOT = "postfix-dovecot", "Postfix + Dovecot"


class GatewayProxy(models.TextChoices):
    TRAEFIK_HAPROXY = "traefik-haproxy", "Traefik for 443/465/993/995/4190, HAProxy for 25"
    HAPROXY = "haproxy", "HAProxy for every port"


class RelayKind(models.TextChoices):
    PROTON_BRIDGE = "proton-bridge", "Proton Mail Bridge"
    GENERIC = "generic", "Other smarthost"


class TlsLevel(models.TextChoices):
    """Postfix ``smtp_tls_security_level`` values that make sense toward a smarthost."""

    MAY = "may", "may: TLS when offered"
    ENCRYPT = "encrypt", "encrypt: TLS required, certificate not checked"
    VERIFY = "verify", "verify: TLS required, certificate name checked"
    SECURE = "secure", "secure: TLS required, certificate checked against the trusted CAs"


class DeploymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ROLLED_BACK = "rolled-back", "Rolled back"
    AWAITING = "awaiting", "Waiting for approval"
    SUPERSEDED = "superseded", "Replaced by a newer plan"


class FileChange(models.TextChoices):
    UNCHANGED = "unchanged", "Unchanged"
    CREATED = "created", "Created"
    CHANGED = "changed", "Changed"
    DELETED = "deleted", "Deleted"


class DeploymentTrigger(models.TextChoices):
    """What started a deployment: a rollback keeps the trigger of the page or call that asked."""

    UI = "ui", "Deploy page"
    API = "api", "API"
    CLI = "cli", "manage.py deploy"
    LAB = "lab", "The gateway lab"
    BENCH = "bench", "A benchmark"
    AUTO = "auto", "A change, deployed by itself"


class ApplyChanges(models.TextChoices):
    """What a committed change to the directory does to a host (docs/architecture.md)."""

    AUTOMATICALLY = "automatically", "Apply them at once"
    APPROVAL = "approval", "Wait for the owner's approval"
