"""A minimal single-file Django project served as WSGI."""

import json

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="diorite-test",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


def home(request):
    return HttpResponse("Hello from Django")


def item(request, pk):
    return JsonResponse({"pk": pk, "q": request.GET.get("q")})


@csrf_exempt
def submit(request):
    if request.method != "POST":
        return HttpResponse(status=405)
    payload = json.loads(request.body)
    return JsonResponse({"got": payload, "length": len(request.body)}, status=201)


urlpatterns = [
    path("", home),
    path("items/<int:pk>/", item),
    path("submit/", submit),
]

application = get_wsgi_application()
