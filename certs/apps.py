from django.apps import AppConfig


class CertsConfig(AppConfig):
    name = "certs"
    verbose_name = "Certificates"

    def ready(self):
        from certs import deploy
        from gateway import bundle

        # Certificates reach their hosts as units of the host's bundle (the normal engine).
        bundle.contributor(deploy.units)
