"""A TCP relay between PostgreSQL clients and the test cluster that fails as a network does.

Everything a client and the server send is relayed unchanged, until the test asks for a fault:

- :meth:`CuttingProxy.cut_after_next_commit`: the next ``COMMIT`` a client sends reaches the
  server, which commits it; its answer is dropped and the connection cut. The client cannot tell
  whether its transaction committed: the ambiguous case a writer must survive without writing twice.
- :meth:`CuttingProxy.down` / :meth:`CuttingProxy.up`: every connection cut, new ones refused
  (accepted and closed at once), as while a server restarts or a link is out; then back.
- :meth:`CuttingProxy.freeze` / :meth:`CuttingProxy.thaw`: nothing relayed either way, connections
  left open, as a stalled server or a congested link; then everything held is delivered.

psycopg sends ``COMMIT`` in the simple query protocol (``Q``, length, text), so the relay
recognises that exact message in a client's stream.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit, urlunsplit

COMMIT = b"Q\x00\x00\x00\x0bCOMMIT\x00"


class _Pair:
    def __init__(self, client: socket.socket, server: socket.socket):
        self.client, self.server = client, server
        self.swallow = False  # the server's next answer is dropped and both ends cut

    def close(self) -> None:
        for s in (self.client, self.server):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()


class CuttingProxy:
    """Listens on a free port of 127.0.0.1 and relays to ``target_url``'s host and port."""

    def __init__(self, target_url: str):
        parts = urlsplit(target_url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._target_url = parts
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: set[_Pair] = set()
        self._cut_commits = 0  # COMMITs still to cut
        self.commits_cut = 0
        self._down = False
        self._closed = False
        self._flowing = threading.Event()
        self._flowing.set()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        """The target URL with the relay's address instead of the server's."""
        p = self._target_url
        netloc = (p.username + "@" if p.username else "") + f"127.0.0.1:{self.port}"
        return urlunsplit((p.scheme, netloc, p.path, p.query, p.fragment))

    def cut_after_next_commit(self, times: int = 1) -> None:
        with self._lock:
            self._cut_commits += times

    def down(self) -> None:
        with self._lock:
            self._down = True
            pairs = list(self._pairs)
        for pair in pairs:
            pair.close()

    def up(self) -> None:
        with self._lock:
            self._down = False

    def freeze(self) -> None:
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self.thaw()
        self.down()
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                down = self._down
            if down:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            pair = _Pair(client, server)
            with self._lock:
                self._pairs.add(pair)
            threading.Thread(target=self._to_server, args=(pair,), daemon=True).start()
            threading.Thread(target=self._to_client, args=(pair,), daemon=True).start()

    def _to_server(self, pair: _Pair) -> None:
        try:
            while data := pair.client.recv(65536):
                if COMMIT in data:
                    with self._lock:
                        if self._cut_commits:
                            self._cut_commits -= 1
                            self.commits_cut += 1
                            pair.swallow = True  # before the server can answer
                self._flowing.wait()
                pair.server.sendall(data)
        except OSError:
            pass
        self._drop(pair)

    def _to_client(self, pair: _Pair) -> None:
        try:
            while data := pair.server.recv(65536):
                if pair.swallow:
                    break  # the server committed and answered: the answer never arrives
                self._flowing.wait()
                pair.client.sendall(data)
        except OSError:
            pass
        self._drop(pair)

    def _drop(self, pair: _Pair) -> None:
        pair.close()
        with self._lock:
            self._pairs.discard(pair)
