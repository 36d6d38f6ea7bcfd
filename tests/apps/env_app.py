"""Shows the environment variables the tests set through --env-files."""

import json
import os


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    keys = ("GREETING_FROM_ENV", "SECOND")
    return [json.dumps({k: os.environ.get(k) for k in keys}).encode()]
