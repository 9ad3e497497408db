from django.contrib import admin

from tracking.models import Click, Conversion, EventRecord, PostbackLog

admin.site.register([Click, Conversion, EventRecord, PostbackLog])
