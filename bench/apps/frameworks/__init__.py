"""Small apps on real frameworks for bench/frameworks.py: FastAPI,
Starlette, Django (WSGI and ASGI) and Flask, each a few lines of the kind
a real project has, so that the server's share of the work is seen beside
a framework's rather than beside a bare callable."""
