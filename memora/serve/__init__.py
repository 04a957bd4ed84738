"""``memora serve``: the memory store over HTTP, every request in the scope of its API key
(:mod:`memora.serve.app`, :mod:`memora.serve.keys`)."""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str) -> object:
    if name == "create_app":  # FastAPI loads only when the server is used
        from memora.serve.app import create_app

        return create_app
    raise AttributeError(name)
