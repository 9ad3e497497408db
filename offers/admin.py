from django.contrib import admin

from offers.models import Advertiser, Event, Offer, Publisher

admin.site.register([Advertiser, Publisher, Offer, Event])
