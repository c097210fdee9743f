from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "keys"
    verbose_name = "OpenPGP keys"

    def ready(self):
        from auditlog.registry import auditlog

        from gateway import audit, bundle
        from keys import models, wkd

        audit.register(models.TrustAnchor, models.ContactKey)
        # The binary copies of a key are left out of the change log: auditlog writes values as
        # text, which bytes are not (the armored key beside them records the same change).
        if not auditlog.contains(models.OpenPGPKey):
            auditlog.register(
                models.OpenPGPKey,
                exclude_fields=["wkd_key", "autocrypt_key"],
                mask_fields=audit.secret_fields(models.OpenPGPKey),
            )
        bundle.contributor(wkd.wkd_units)
