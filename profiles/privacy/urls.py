"""The privacy page (/privacy/, namespace ``privacy``)."""

from __future__ import annotations

from django.urls import path

from profiles.privacy import views

app_name = "privacy"

urlpatterns = [
    path("", views.privacy_requests, name="requests"),
    path("list/", views.privacy_requests_list, name="list"),
    path("<int:pk>/document/", views.privacy_document, name="document"),
]
