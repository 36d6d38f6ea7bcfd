"""Fails while being imported."""

1 / 0  # noqa: B018
