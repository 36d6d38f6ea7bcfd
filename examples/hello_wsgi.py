"""The smallest WSGI app: `diorite --interface wsgi examples.hello_wsgi:app`."""


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, world!"]
