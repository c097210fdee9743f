from django.db import models


class Purpose(models.TextChoices):
    MAIL = "mail", "Mail server (SMTP, submission, IMAP)"
    GATEWAY = "gateway", "Gateway web (WKD, MTA-STS)"
    MAILU = "mailu", "Mailu's front (SMTP, submission, IMAP, HTTPS)"


class Outcome(models.TextChoices):
    RUNNING = "running", "Running"
    ISSUED = "issued", "Issued"
    FAILED = "failed", "Failed"


class Trigger(models.TextChoices):
    SCHEDULE = "schedule", "Renewal (Celery beat)"
    FORCED = "forced", "Forced"
    UI = "ui", "By hand"
    API = "api", "API"
