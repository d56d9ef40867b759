"""URLs of the demo's web page: the shop's page and the tasks' status API."""

from django.urls import include, path

from shop import views

urlpatterns = [
    path("", views.index, name="index"),
    path("start/", views.start, name="start"),
    path("tasks/", include("boogie_tasks.urls")),
]
