from django.apps import AppConfig


class ZonesConfig(AppConfig):
    name = "zones"
    verbose_name = "DNS"

    def ready(self):
        from gateway import audit
        from gateway.bundle import contributor
        from zones import models, mtasts

        audit.register(models.DkimKey, models.ZoneSettings, models.PushTarget)
        contributor(mtasts.units)
