"""Answers with the worker's process id; /alloc grows the worker's memory."""

import os

HOARD = []


def app(environ, start_response):
    if environ["PATH_INFO"] == "/alloc":
        HOARD.append(bytearray(200 * 1024 * 1024))  # touched: counts in RSS
        for i in range(0, len(HOARD[-1]), 4096):
            HOARD[-1][i] = 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
