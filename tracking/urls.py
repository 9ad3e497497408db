"""The public hit endpoints, mounted at the site root."""

from django.urls import path

from tracking import views

urlpatterns = [
    path("click", views.click, name="click"),
    path("healthz", views.healthz, name="healthz"),
    path("postback", views.postback, name="postback"),
    path("postback/", views.postback),
    path("postback/status", views.postback_status, name="postback-status"),
    path("postback/status/", views.postback_status),
    path("", views.root, name="root"),
]
