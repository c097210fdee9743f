from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "keys"
    verbose_name = "OpenPGP keys"

    def ready(self):
        from gateway import audit
        from keys import models

        audit.register(models.OpenPGPKey)
