"""A loopback HTTP server that records every request it gets (headers and body) and answers like
an OpenAI-compatible endpoint, a webhook receiver or a scoring webhook. With ``echo=True`` it
answers every model call with a 401 whose message repeats the Authorization header, as some
proxies do. With ``redirect_to`` it sends every request on there with a 307."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Recorder:
    def __init__(self, *, echo: bool = False, redirect_to: str | None = None):
        self.echo = echo
        self.redirect_to = redirect_to  # answer every request with a 307 to this base URL
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def found(self, secrets: Iterable[str]) -> list[str]:
        """Every (secret, where) that arrived here, in a header or a body."""
        with self._lock:
            seen = list(self.requests)
        hits = []
        for req in seen:
            text = json.dumps(req["headers"]) + req["body"] + req["path"]
            hits += [f"{s!r} in {req['method']} {req['path']}" for s in secrets if s in text]
        return hits

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _record(self) -> str:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                with rec._lock:
                    rec.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                                         "body": body})
                return body

            def _send(self, status: int, data: Any) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _redirect(self) -> bool:
                if not rec.redirect_to:
                    return False
                self.send_response(307)
                self.send_header("Location", rec.redirect_to + self.path.removeprefix("/v1"))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return True

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self._record()
                if self._redirect():
                    return
                if rec.echo:
                    self._send(401, {"error": {"message": f"invalid key {self.headers.get('Authorization')}"}})
                else:
                    self._send(200, {"object": "list", "data": [{"id": "m1"}, {"id": "m2"}]})

            def do_POST(self) -> None:  # noqa: N802
                body = self._record()
                if self._redirect():
                    return
                if rec.echo:  # every header value, as a debugging proxy might
                    self._send(401, {"error": {"message": f"Incorrect API key provided: {dict(self.headers.items())}"}})
                elif self.path.endswith("/chat/completions"):
                    self._send(200, {"choices": [{"message": {"role": "assistant", "content": "4 alpha"}}],
                                     "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
                elif self.path.endswith("/embeddings"):
                    texts = json.loads(body or "{}").get("input") or []
                    self._send(200, {"data": [{"index": i, "embedding": [1.0, 0.0]} for i in range(len(texts))]})
                else:
                    self._send(200, {"score": 1.0})

        return Handler
