"""The smallest WSGI app: `diorite examples.hello_wsgi:app` (found to be WSGI)."""


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, world!"]
