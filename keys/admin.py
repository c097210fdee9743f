from django.contrib import admin

from keys.models import CertificationAlert, ContactKey, OpenPGPKey, TrustAnchor


@admin.register(OpenPGPKey)
class OpenPGPKeyAdmin(admin.ModelAdmin):
    list_display = ("mailbox", "fingerprint", "expires_at", "published")
    readonly_fields = ("fingerprint", "user_id", "public_key", "expires_at")


@admin.register(TrustAnchor)
class TrustAnchorAdmin(admin.ModelAdmin):
    list_display = ("name", "fingerprint", "expires_at")
    readonly_fields = ("fingerprint", "user_id", "public_key", "expires_at")


@admin.register(ContactKey)
class ContactKeyAdmin(admin.ModelAdmin):
    list_display = ("__str__", "fingerprint", "validity", "checked_at")
    readonly_fields = ("fingerprint", "user_ids", "public_key", "validity", "expires_at")


@admin.register(CertificationAlert)
class CertificationAlertAdmin(admin.ModelAdmin):
    list_display = ("contact_key", "trust_anchor", "user_id", "kind", "expires_at")
