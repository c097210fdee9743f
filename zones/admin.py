from django.contrib import admin

from zones.models import DkimKey

admin.site.register(DkimKey)
