"""Apps that report what they learn about the connection's TLS: `asgi`
(http and websocket), `wsgi` and `rsgi`, each answering JSON."""

import json

from reporting import asgi_reporter, rsgi_reporter


def _tls(scope):
    tls = scope.get("extensions", {}).get("tls")
    return None if tls is None else {**tls, "client_cert_chain": list(tls["client_cert_chain"])}


def _asgi_info(scope):
    return {"scheme": scope["scheme"], "http_version": scope["http_version"], "tls": _tls(scope)}


asgi = asgi_reporter(_asgi_info, body_length=True)


def wsgi(environ, start_response):
    info = {
        "scheme": environ["wsgi.url_scheme"],
        "https": environ.get("HTTPS"),
        "protocol": environ["SERVER_PROTOCOL"],
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(info).encode()]


def _rsgi_info(scope):
    return {"scheme": scope.scheme, "http_version": scope.http_version, "proto": scope.proto}


rsgi = rsgi_reporter(_rsgi_info)
