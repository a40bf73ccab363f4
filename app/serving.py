"""Checks `jambo serve` makes before it starts: a free port, and the origins it serves."""

import errno
import socket


def port_problem(host: str, port: int) -> str | None:
    """One line saying why `host:port` cannot be served, or None when it can."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return f"Cannot serve on {host}: no such address (try --host 127.0.0.1)."
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"Port {port} on {host} is already in use: stop what is running there, or"
                    f" pick another port (make run PORT={port + 1}, jambo serve --port {port + 1})."
                )
            if exc.errno == errno.EACCES:
                return f"Not allowed to listen on port {port}: pick one above 1023."
            return f"Cannot listen on {host}:{port}: {exc.strerror}."
    return None


def origins_for(host: str, port: int) -> list[str]:
    """The browser origins of the served address (both loopback spellings for a local one)."""
    if host in ("127.0.0.1", "localhost", "0.0.0.0", "::", "::1"):
        return [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
    return [f"http://{host}:{port}"]
