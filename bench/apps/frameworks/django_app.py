"""Django: one view rendering a template (a title and a loop over ten
items), the same project served as WSGI (`wsgi`) and ASGI (`asgi`).

Settings are configured here rather than in a settings module so the app
stays one file; DEBUG is off and there is no database. The middleware is
the part of a new project's default list that needs neither sessions nor
a database.
"""

from pathlib import Path

from django.conf import settings
from django.urls import path

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ],
    TEMPLATES=[
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [Path(__file__).parent / "templates"],
        }
    ],
    USE_TZ=True,
)

from django.core.asgi import get_asgi_application  # noqa: E402 (needs the settings)
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.shortcuts import render  # noqa: E402

ITEMS = [{"name": f"item {i}", "price": 9.5 + i, "stock": i % 3} for i in range(10)]


def items(request):
    return render(request, "items.html", {"title": "Items", "items": ITEMS})


urlpatterns = [path("items/", items)]

wsgi = get_wsgi_application()
asgi = get_asgi_application()
