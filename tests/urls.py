"""URLs of the test project: the admin, the status API and a page of progress bars."""

from django.contrib import admin
from django.urls import include, path

from tests.testapp.views import progress_page

urlpatterns = [
    path("admin/", admin.site.urls),
    path("tasks/", include("boogie_tasks.urls")),
    path("progress/", progress_page, name="progress-page"),
]
