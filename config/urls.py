from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from offers import api as offers_api
from offers import api_postbacks
from tracking import admin_deliveries, admin_views, api_deliveries
from tracking import api as tracking_api
from tracking.reports import ReportView


@csrf_exempt  # a 404 whatever the method: no CSRF page for a path that does not exist
def api_not_found(request: HttpRequest, *args: object, **kwargs: object) -> JsonResponse:
    return JsonResponse({"detail": "Not found."}, status=404)


router = DefaultRouter()
router.register("advertisers", offers_api.AdvertiserViewSet, basename="advertiser")
router.register("publishers", offers_api.PublisherViewSet, basename="publisher")
router.register("offers", offers_api.OfferViewSet, basename="offer")
router.register(
    # Any segment, not only digits: a non-numeric offer_pk is the API's JSON 404, not an
    # HTML page of Django's.
    r"offers/(?P<offer_pk>[^/.]+)/events",
    offers_api.EventViewSet,
    basename="offer-event",
)
router.register("conversions", tracking_api.ConversionViewSet, basename="conversion")
router.register("event-records", tracking_api.EventRecordViewSet, basename="event-record")
router.register("postbacks", tracking_api.PostbackLogViewSet, basename="postback-log")
router.register(
    r"publishers/(?P<publisher_pk>[0-9]+)/postbacks",
    api_postbacks.PublisherPostbackViewSet,
    basename="publisher-postback",
)
router.register("deliveries", api_deliveries.DeliveryViewSet, basename="delivery")

urlpatterns = [
    # First: the public endpoints, including the site root (postbacks may arrive at "/").
    # They take thousands of hits a second and are resolved against every pattern before
    # theirs; none of their paths is a prefix of another pattern's.
    path("", include("tracking.urls")),
    # The offer page's Test postback tab (JSON); before admin/ so the admin does not claim them.
    path(
        "admin/tracking/test-postback/<int:offer_id>/click/",
        admin_views.test_click_view,
        name="tracking-test-click",
    ),
    path(
        "admin/tracking/test-postback/<int:offer_id>/send/",
        admin_views.test_postback_view,
        name="tracking-test-postback",
    ),
    path(
        "admin/offers/publisherpostback/<int:postback_id>/test/",
        admin_deliveries.publisher_postback_test_view,
        name="tracking-publisher-postback-test",
    ),
    path("admin/", admin.site.urls),
    path("api/v1/reports/", ReportView.as_view(), name="reports"),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # Last: whatever else is under api/ (an ID with a dot or a slash, a path that does not
    # exist) is the API's JSON 404, not an HTML page.
    re_path(r"^api/", api_not_found),
]
