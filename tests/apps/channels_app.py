"""A single-file Django Channels project: a ProtocolTypeRouter with an
async and a sync websocket consumer next to Django's own HTTP handling."""

import json

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="diorite-test",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=["channels"],
)

import django  # noqa: E402

django.setup()

from channels.generic.websocket import (  # noqa: E402
    AsyncJsonWebsocketConsumer,
    WebsocketConsumer,
)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

CLOSED: list = []


def stats(request):
    return JsonResponse({"closed": CLOSED})


urlpatterns = [path("stats/", stats)]


class AsyncEcho(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.room = self.scope["url_route"]["kwargs"]["room"]
        await self.accept()

    async def receive_json(self, content, **kwargs):
        await self.send_json({"room": self.room, "echo": content})

    async def disconnect(self, code):
        CLOSED.append({"consumer": "async", "code": code})


class SyncEcho(WebsocketConsumer):
    def connect(self):
        if self.scope["query_string"] == b"deny":
            self.close()
            return
        self.accept()

    def receive(self, text_data=None, bytes_data=None):
        if text_data == "bye":
            self.close(code=4001)
        elif text_data is not None:
            self.send(text_data=json.dumps({"sync": text_data}))
        else:
            self.send(bytes_data=bytes_data[::-1])

    def disconnect(self, code):
        CLOSED.append({"consumer": "sync", "code": code})


application = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": URLRouter(
            [
                path("ws/async/<str:room>/", AsyncEcho.as_asgi()),
                path("ws/sync/", SyncEcho.as_asgi()),
            ]
        ),
    }
)
