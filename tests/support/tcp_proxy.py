"""A minimal TCP load balancer for tests: each connection goes to the first backend that
accepts it, so when a replica dies its clients' next connections reach the next one, as
behind any HTTP load balancer with health-less failover."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    for end in (source, target):
        with suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)


def _serve(listener: socket.socket, backends: list[tuple[str, int]]) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return  # closed
        upstream = None
        for backend in backends:
            try:
                upstream = socket.create_connection(backend, timeout=2)
                upstream.settimeout(None)
                break
            except OSError:
                continue
        if upstream is None:
            client.close()
            continue
        for source, target in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(source, target), daemon=True).start()


@contextmanager
def failover_proxy(*urls: str) -> Iterator[str]:
    """`http://127.0.0.1:<port>` forwarding to the first of `urls` that accepts."""
    backends = []
    for url in urls:
        host, _, port = url.removeprefix("http://").rstrip("/").rpartition(":")
        backends.append((host, int(port)))
    listener = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=_serve, args=(listener, backends), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
