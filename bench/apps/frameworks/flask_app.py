"""Flask: jsonify of a small dict built from a path parameter."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/users/<int:user_id>")
def user(user_id: int):
    return jsonify(
        id=user_id, name=f"user {user_id}", email=f"user{user_id}@example.com", active=True
    )
