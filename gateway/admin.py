from django.contrib import admin

from gateway.models import Alias, ApiToken, Domain, Mailbox


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
