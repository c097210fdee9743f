from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Mail directory"

    def ready(self):
        from gateway import audit

        audit.register_models()
