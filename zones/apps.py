from django.apps import AppConfig


class ZonesConfig(AppConfig):
    name = "zones"
    verbose_name = "DNS"

    def ready(self):
        from gateway import audit
        from gateway.bundle import contributor, settings_contributor
        from hosts.render import postfix
        from zones import models, mtasts, opendkim, rspamd

        audit.register(models.DkimKey, models.ZoneSettings, models.PushTarget)
        contributor(mtasts.units)
        # Signing on the mail server: OpenDKIM and its milter lines in Postfix's main.cf, or
        # rspamd's signing override under Mailu.
        contributor(opendkim.units)
        settings_contributor(postfix.MAIN_CF, opendkim.postfix_settings)
        contributor(rspamd.units)
