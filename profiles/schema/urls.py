"""The schema pages, mounted at /schema/ by profiles.urls (namespace ``schema``)."""

from __future__ import annotations

from django.urls import path

from profiles.schema import views

app_name = "schema"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("publish/", views.publish, name="publish"),
    path("lytics/", views.install_lytics, name="install-lytics"),
    path("rebuild/", views.rebuild_panel, name="rebuild"),
    path("fields/new/", views.field_form, name="field-new"),
    path("fields/<int:pk>/", views.field_form, name="field-edit"),
    path("fields/<int:pk>/delete/", views.field_delete, name="field-delete"),
    path("mappings/new/", views.mapping_form, name="mapping-new"),
    path("mappings/evaluate/", views.evaluate, name="evaluate"),
    path("mappings/<int:pk>/", views.mapping_form, name="mapping-edit"),
    path("mappings/<int:pk>/delete/", views.mapping_delete, name="mapping-delete"),
    path("route-rules/new/", views.rule_form, name="rule-new"),
    path("route-rules/<int:pk>/", views.rule_form, name="rule-edit"),
    path("route-rules/<int:pk>/delete/", views.rule_delete, name="rule-delete"),
    path("versions/", views.version_list, name="versions"),
    path("versions/<int:number>/", views.version_detail, name="version"),
    path("versions/<int:number>/revert/", views.version_revert, name="version-revert"),
]
