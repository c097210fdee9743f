from django.apps import AppConfig


class HostsConfig(AppConfig):
    name = "hosts"

    def ready(self):
        from gateway import audit
        from hosts import models

        audit.register(models.Host, models.Relay, models.Tunnel, models.TunnelPeer)
