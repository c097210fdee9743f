from django.contrib import admin

from certs.models import Certificate, Issuance


@admin.register(Certificate)
class CertificateAdmin(admin.ModelAdmin):
    list_display = ("name", "host", "purpose", "force_renewal")
    readonly_fields = ("names",)


@admin.register(Issuance)
class IssuanceAdmin(admin.ModelAdmin):
    list_display = ("certificate", "outcome", "serial", "not_after", "started_at")
    exclude = ("private_key",)  # a key is never shown again
    readonly_fields = (
        "certificate",
        "names",
        "outcome",
        "message",
        "serial",
        "issuer",
        "not_before",
        "not_after",
        "fullchain",
        "trigger",
        "started_at",
        "finished_at",
    )
