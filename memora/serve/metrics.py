"""Prometheus metrics of ``memora serve`` (``GET /metrics``, no key: counts and timings only,
no memory text): requests by route, method and status, their latency, the model queue's depth
and the tokens of the chat answers. Each application has its own registry."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Metrics", "install_metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("memora_requests", "HTTP requests answered",
                                ["method", "route", "status"], registry=self.registry)  # fmt: skip
        self.latency = Histogram("memora_request_seconds", "time to answer a request",
                                 ["method", "route"], registry=self.registry)  # fmt: skip
        self.queue = Gauge("memora_model_queue_depth", "model calls waiting or running",
                           registry=self.registry)  # fmt: skip
        self.tokens = Counter("memora_tokens", "prompt and completion tokens of chat answers",
                              ["kind"], registry=self.registry)  # fmt: skip


class _Timing:
    """Times every HTTP request; the route label is the route's template (``/v1/memories/
    {record_id}``), never the path itself."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = str(scope["method"])
            self.metrics.requests.labels(method, route, str(status[0])).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)


def install_metrics(app: FastAPI, queue: Any) -> Metrics:
    """``GET /metrics`` and the request timing of ``app``; the queue depth read from
    ``queue.waiting`` at each scrape."""
    metrics = Metrics()
    metrics.queue.set_function(lambda: float(queue.waiting))
    app.add_middleware(_Timing, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    def scrape() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return metrics
