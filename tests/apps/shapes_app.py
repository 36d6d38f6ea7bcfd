"""Apps of every shape `--interface auto` must recognise, each answering
which interface served it."""

import functools

from django.core.asgi import get_asgi_application
from django_app import application as django_wsgi  # noqa: F401 (configures Django)

django_asgi = get_asgi_application()


async def asgi_function(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"asgi"})


class AsgiClass:
    async def __call__(self, scope, receive, send):
        await asgi_function(scope, receive, send)


async def _asgi_with_greeting(greeting, scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": greeting})


def wsgi_function(environ, start_response):
    start_response("200 OK", [("content-type", "text/plain")])
    multiprocess = b" multiprocess" if environ["wsgi.multiprocess"] else b""
    return [b"wsgi" + multiprocess]


class WsgiClass:
    def __call__(self, environ, start_response):
        return wsgi_function(environ, start_response)


def _wsgi_with_greeting(greeting, environ, start_response):
    start_response("200 OK", [])
    return [greeting]


async def rsgi_function(scope, protocol):
    protocol.response_bytes(200, [], b"rsgi")


class RsgiClass:
    async def __rsgi__(self, scope, protocol):
        protocol.response_bytes(200, [], b"rsgi")


asgi_class = AsgiClass()
asgi_partial = functools.partial(_asgi_with_greeting, b"asgi")
wsgi_class = WsgiClass()
wsgi_partial = functools.partial(_wsgi_with_greeting, b"wsgi")
rsgi_class = RsgiClass()
not_an_app = functools.partial(print)
