from django.apps import AppConfig


class ZonesConfig(AppConfig):
    name = "zones"
    verbose_name = "DNS"

    def ready(self):
        from gateway import audit
        from zones import models

        audit.register(models.DkimKey)
