"""What the web client needs from the server, over plain HTTP: deep links, static modules, server info."""

from __future__ import annotations

import pytest

from opencall import __version__
from tests.support import Server

DEEP_LINKS = ["/", "/invite/5f3c2b8e-6d41-4a90-bf2a-9e0c7f1d2a44", "/login", "/register", "/dashboard", "/docs",
              "/trust", "/contact"]


@pytest.mark.parametrize("path", DEEP_LINKS)
def test_deep_links_serve_the_app(server: Server, path: str) -> None:
    with server.client() as http:
        response = http.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/js/main.js">' in response.text


def test_modules_and_socket_bundle_are_served(server: Server) -> None:
    with server.client() as http:
        for path in ("/static/js/main.js", "/static/js/views/home.js", "/socket.io/socket.io.js"):
            response = http.get(path)
            assert response.status_code == 200, path
            assert "javascript" in response.headers["content-type"], path
        assert http.get("/static/app.css").headers["content-type"].startswith("text/css")


def test_server_info(server: Server) -> None:
    with server.client() as http:
        response = http.get("/api/server-info")
    assert response.status_code == 200
    assert response.json() == {"tls": "off", "version": __version__}
