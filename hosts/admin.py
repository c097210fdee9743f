from django.contrib import admin

from hosts.models import Deployment, DeploymentFile, Host, Relay, Tunnel, TunnelPeer

admin.site.register([Host, Relay, Tunnel, TunnelPeer])


class DeploymentFileInline(admin.TabularInline):
    model = DeploymentFile
    extra = 0


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["__str__", "status", "trigger", "created_at"]
    inlines = [DeploymentFileInline]
