"""A Flask app exercising what users move from Gunicorn."""

import os
import time

from flask import Flask, Response, abort, jsonify, redirect, request, send_file, stream_with_context

app = Flask(__name__)
FILE = os.environ.get("FLASK_TEST_FILE", "")


@app.get("/")
def index():
    return "Hello from Flask"


@app.get("/json")
def json_view():
    return jsonify(items=[1, 2, 3], q=request.args.get("q"))


@app.post("/form")
def form():
    return jsonify(dict(request.form))


@app.post("/upload")
def upload():
    data = request.get_data()
    return jsonify(size=len(data), head=data[:4].decode("latin-1"))


@app.get("/file")
def file():
    return send_file(FILE, mimetype="application/octet-stream", conditional=True)


@app.get("/stream")
def stream():
    def generate():
        for i in range(int(request.args.get("n", 5))):
            yield f"data: {i}\n\n"
            time.sleep(float(request.args.get("delay", 0)))

    return Response(stream_with_context(generate()), mimetype="text/event-stream")


@app.get("/old")
def old():
    return redirect("/json?q=redirected")


@app.get("/missing")
def missing():
    abort(404)


@app.get("/error")
def error():
    raise KeyError("flask boom")
