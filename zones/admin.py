from django.contrib import admin

from zones.models import CheckRun, DkimKey, PushTarget, ZoneSettings


@admin.register(DkimKey)
class DkimKeyAdmin(admin.ModelAdmin):
    list_display = ("__str__", "active", "retired_at", "created_at")
    exclude = ("private_key",)  # a secret: never shown, not even to the owner
    readonly_fields = ("public_key",)


@admin.register(ZoneSettings)
class ZoneSettingsAdmin(admin.ModelAdmin):
    list_display = ("domain", "ttl", "dmarc_policy", "mta_sts_mode", "tlsa_enabled")


@admin.register(PushTarget)
class PushTargetAdmin(admin.ModelAdmin):
    list_display = ("domain", "kind", "server", "provider", "last_pushed_at")
    exclude = ("tsig_secret", "provider_token")


@admin.register(CheckRun)
class CheckRunAdmin(admin.ModelAdmin):
    list_display = ("domain", "started_at", "trigger", "passed", "failed", "dnssec")
    list_filter = ("trigger",)
