"""Settings of the demo's web page: the demo's own, plus what serving pages needs.

Local use only (``run_web.py`` binds to 127.0.0.1): there is no login, and
``BOOGIE_TASKS_PERMISSION`` lets every visitor see and cancel every run.
"""

from demo_project.settings import *  # noqa: F403
from demo_project.settings import INSTALLED_APPS

DEBUG = True  # runserver then serves progress.js and progress.css itself
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [*INSTALLED_APPS, "django.contrib.staticfiles"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "demo_project.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
STATIC_URL = "/static/"

# Who may see and cancel a run: anyone, as the page has no login. A real project
# keeps the default (owner, staff, model permissions) or names its own rule.
BOOGIE_TASKS_PERMISSION = "shop.views.anyone_may"
