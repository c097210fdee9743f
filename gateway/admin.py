from django.contrib import admin
from django_otp.plugins.otp_totp import admin as totp_admin  # noqa: F401 (registers it first)
from django_otp.plugins.otp_totp.models import TOTPDevice

from gateway.models import Alias, ApiToken, Domain, Mailbox

# A second factor is removed only on the security page, which asks for the password or a current
# code again; django-otp's own admin page would delete it without asking.
admin.site.unregister(TOTPDevice)


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["name", "mail_hostname", "enabled"]
    filter_horizontal = ["managers"]


@admin.register(Mailbox)
class MailboxAdmin(admin.ModelAdmin):
    list_display = ["__str__", "display_name", "enabled"]
    list_select_related = ["domain"]


@admin.register(Alias)
class AliasAdmin(admin.ModelAdmin):
    list_display = ["__str__", "allowed_as_sender", "enabled"]
    list_select_related = ["domain"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "hint", "created_at", "last_used_at"]
    readonly_fields = ["hint", "created_at", "last_used_at"]
