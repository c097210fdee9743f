from django.apps import AppConfig


class HostsConfig(AppConfig):
    name = "hosts"

    def ready(self):
        from auditlog.signals import post_log

        from gateway import audit, liveness
        from hosts import models, selectors, signals

        audit.register(models.Host, models.Relay, models.Tunnel, models.TunnelPeer)
        post_log.connect(signals.change_logged, dispatch_uid="hosts.converge")
        liveness.provider(selectors.liveness)
