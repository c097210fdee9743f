from django.contrib import admin

from keys.models import OpenPGPKey

admin.site.register(OpenPGPKey)
