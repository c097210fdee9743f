from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Mail directory"

    def ready(self):
        from django.utils.module_loading import autodiscover_modules

        from gateway import audit

        audit.register_models()
        autodiscover_modules("probes")  # each app's status probes (gateway/status.py)
