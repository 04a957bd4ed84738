"""Small HTTP servers on 127.0.0.1 that misbehave on purpose, for the OpenAI backend's error
paths: each answers every request with the same canned reply (or none at all) and counts the
requests it got, so a test can check that retries stay bounded.

    with FakeServer(html_page()) as server:
        OpenAILLM("m", base_url=server.url + "/v1").generate("hi")   # ProtocolError
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "FakeServer",
    "Reply",
    "cut_off",
    "events",
    "hang",
    "html_page",
    "json_body",
    "sse_chunk",
]

#: What the server does with one accepted connection, after reading the request.
Reply = Callable[[socket.socket, threading.Event], None]


class FakeServer:
    """A loopback server that answers every request with ``reply``; ``url`` is its origin."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._connections: list[socket.socket] = []

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._connections:
            conn.close()
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self._connections.append(conn)
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            self.requests.append(_read_request(conn))
            self.reply(conn, self._stop)
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            conn.close()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            return data
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        more = conn.recv(65536)
        if not more:
            break
        body += more
    return head + b"\r\n\r\n" + body


def _response(status: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def hang(conn: socket.socket, stop: threading.Event) -> None:
    """Accept the request and never answer (until the server stops)."""
    stop.wait()


def html_page(status: str = "200 OK") -> Reply:
    """An HTML page, as a web server or proxy in front of the wrong path sends."""
    body = (
        b"<!DOCTYPE html>\n<html><head><title>Welcome</title></head><body>It works!</body></html>"
    )

    def reply(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(_response(status, "text/html; charset=utf-8", body))

    return reply


def json_body(data: Any, status: str = "200 OK") -> Reply:
    """One JSON answer (not streamed)."""

    def reply(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(_response(status, "application/json", json.dumps(data).encode()))

    return reply


def events(datas: Sequence[str], *, then_hang: bool = False) -> Reply:
    """A server-sent-event stream of ``data:`` lines, written as given (so they can be broken);
    with ``then_hang`` the stream stays open and silent after them."""

    def reply(conn: socket.socket, stop: threading.Event) -> None:
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
            "Connection: close\r\n\r\n"
        )
        conn.sendall(head.encode() + "".join(f"data: {d}\r\n\r\n" for d in datas).encode())
        if then_hang:
            stop.wait()

    return reply


def cut_off(conn: socket.socket, stop: threading.Event) -> None:
    """A chunked event stream that closes in the middle of its second chunk (a server that
    crashed midway)."""
    data = f"data: {sse_chunk('Hi')}\r\n\r\n".encode()
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    conn.sendall(head + f"{len(data):x}\r\n".encode() + data + b"\r\n" + b"ff\r\ndata: {")


def sse_chunk(content: str | None = "hi", finish: str | None = None, **extra: Any) -> str:
    """One well-formed chat.completion.chunk, as JSON text."""
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": finish}
    chunk = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [choice],
        **extra,
    }
    return json.dumps(chunk)
