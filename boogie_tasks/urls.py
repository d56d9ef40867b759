"""URLs of the status API: include them with ``path("tasks/", include("boogie_tasks.urls"))``."""

from django.urls import path

from boogie_tasks import views

app_name = "boogie_tasks"

urlpatterns = [
    path("<uuid:pk>/", views.status, name="status"),
    path("<uuid:pk>/cancel/", views.cancel, name="cancel"),
]
