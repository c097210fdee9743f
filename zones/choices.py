from django.db import models


class DmarcPolicy(models.TextChoices):
    NONE = "none", "none: only collect reports"
    QUARANTINE = "quarantine", "quarantine: failing mail goes to spam"
    REJECT = "reject", "reject: failing mail is refused"


class MtaStsMode(models.TextChoices):
    """RFC 8461 §5: how senders treat a failed TLS check toward the MX."""

    ENFORCE = "enforce", "enforce: never deliver without valid TLS"
    TESTING = "testing", "testing: deliver anyway, send TLS reports"
    NONE = "none", "none: withdraw the policy"


class PushKind(models.TextChoices):
    RFC2136 = "rfc2136", "RFC 2136 dynamic update with TSIG (BIND, Knot, PowerDNS)"
    PROVIDER = "provider", "A DNS provider's API (through dns-lexicon)"


class TsigAlgorithm(models.TextChoices):
    HMAC_SHA256 = "hmac-sha256", "hmac-sha256"
    HMAC_SHA512 = "hmac-sha512", "hmac-sha512"
    HMAC_SHA384 = "hmac-sha384", "hmac-sha384"
    HMAC_SHA1 = "hmac-sha1", "hmac-sha1 (old servers only)"


class CheckStatus(models.TextChoices):
    OK = "ok", "OK"
    FAIL = "fail", "Wrong"
    WARN = "warn", "Warning"
    INFO = "info", "Note"


class CheckKind(models.TextChoices):
    RECORD = "record", "Record"
    FCRDNS = "fcrdns", "Forward-confirmed reverse DNS"
    HELO = "helo", "HELO name"
    DNSSEC = "dnssec", "DNSSEC"


class CheckTrigger(models.TextChoices):
    UI = "ui", "Page"
    API = "api", "API"
    CLI = "cli", "manage.py"
    SCHEDULE = "schedule", "Schedule"
