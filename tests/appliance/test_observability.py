"""/healthz, /metrics and systemd readiness, on real servers."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import socketio

from opencall.api.ops import health_report
from tests.appliance.tools import http_get
from tests.support import Server, configured_server, metric

TOKEN = "scrape-token-0123456789"


def test_health_report_rules() -> None:
    assert health_report("ok", "ok")[0] == 200
    assert health_report("ok", "off")[0] == 200
    status, body = health_report("ok", "not running")
    assert (status, body["status"], body["relay"]) == (503, "down", "not running")
    assert health_report("timeout", "ok")[0] == 503
    status, body = health_report("ok", "loopback only")
    assert (status, body["status"], body["relay"]) == (503, "down", "loopback only")


def test_healthz_with_the_relay_off(make_server: Callable[..., Server]) -> None:
    server = make_server({"turn": {"enabled": False}})
    response = http_get(f"{server.base_url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "relay": "off", "version": response.json()["version"]}
    assert response.headers["cache-control"] == "no-store"


async def test_metrics_count_sockets_and_rate_limit_hits(make_server: Callable[..., Server]) -> None:
    server = make_server({"rate_limits": {"login_per_ip": 1}})
    with server.client() as client:
        text = client.get("/metrics").text
        assert metric(text, "opencall_sockets_connected") == 0
        assert metric(text, 'opencall_calls{state="ringing"}') == 0
        assert metric(text, 'opencall_calls{state="active"}') == 0
        for outcome in ("answered", "rejected", "missed"):
            assert metric(text, f'opencall_calls_finished_total{{outcome="{outcome}"}}') == 0
        assert metric(text, "opencall_relay_up") == 1
        assert metric(text, "opencall_turn_allocations") == 0
        assert "# TYPE opencall_rate_limit_hits_total counter" in text

        for _ in range(3):
            client.post("/api/auth/login", json={"username": "nobody", "password": "whatever1"})
        response = client.get("/metrics")
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert metric(response.text, 'opencall_rate_limit_hits_total{limit="login_per_ip"}') == 2

    sio = socketio.AsyncClient()
    await sio.connect(server.base_url, transports=["websocket"])
    try:
        text = http_get(f"{server.base_url}/metrics").text
        assert metric(text, "opencall_sockets_connected") == 1
    finally:
        await sio.disconnect()


def test_metrics_access(make_server: Callable[..., Server]) -> None:
    locked = make_server({"metrics": {"allow": [], "token": TOKEN}}, name="locked")
    url = f"{locked.base_url}/metrics"
    assert http_get(url).status_code == 403
    assert http_get(url, headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 403
    response = http_get(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and "opencall_info" in response.text
    assert http_get(f"{locked.base_url}/healthz").json()["database"] == "ok"  # health stays open

    off = make_server({"metrics": {"enabled": False}}, name="off")
    assert http_get(f"{off.base_url}/metrics").status_code == 404


def test_ready_is_sent_to_systemd_once_everything_listens(tmp_path: Path) -> None:
    """Type=notify: READY=1 arrives only when HTTP and Socket.IO already answer; STOPPING=1 on SIGTERM."""
    notify_path = tmp_path / "notify"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(30)
    server = configured_server(tmp_path / "srv", env={"NOTIFY_SOCKET": str(notify_path)}).launch()
    proc = server.proc
    assert proc is not None
    try:
        message = listener.recv(4096).decode()
        assert message.startswith("READY=1\nSTATUS=serving http on 127.0.0.1:"), message
        assert http_get(f"{server.base_url}/api/auth/me").status_code == 200  # no retry: already serving
        handshake = http_get(f"{server.base_url}/socket.io/", params={"EIO": "4", "transport": "polling"})
        assert handshake.status_code == 200 and '"sid"' in handshake.text
        proc.terminate()
        assert listener.recv(4096) == b"STOPPING=1"
        assert proc.wait(timeout=20) == 0
    finally:
        server.stop()
        listener.close()


@pytest.mark.parametrize("bad", [{"token": "short"}, {"allow": ["nonsense"]}, {"enabled": "yes"}, {"extra": 1}])
def test_metrics_config_is_checked(tmp_path: Path, bad: dict[str, object]) -> None:
    from opencall.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=r"^metrics\."):
        parse_config({"metrics": bad}, tmp_path)


def test_relay_counters_become_metrics_once_a_relay_is_attached() -> None:
    """The seam the relay is wired through: RelayMonitor.attach(counters, running) feeds /metrics."""
    from opencall.metrics import Snapshot, render
    from opencall.relay.monitor import RelayMonitor
    from turn.counters import Counters

    counters = Counters(allocations=2, allocations_created=5, packets_to_peers=7, bytes_to_peers=700,
                        packets_to_clients=3, bytes_to_clients=300, auth_failures=1)
    monitor = RelayMonitor(enabled=True)
    assert (monitor.state(), monitor.counters()) == ("not running", None)
    running = True
    monitor.attach(counters.snapshot, running=lambda: running)
    assert monitor.state() == "ok"
    text = render(Snapshot(version="x", sockets=0, calls={}, outcomes={}, rate_limit_refusals={},
                           relay_state=monitor.state(), relay_counters=monitor.counters()))
    assert metric(text, "opencall_relay_up") == 1
    assert metric(text, "opencall_turn_allocations") == 2
    assert metric(text, "opencall_turn_allocations_created_total") == 5
    assert metric(text, 'opencall_turn_relayed_packets_total{direction="to_peer"}') == 7
    assert metric(text, 'opencall_turn_relayed_bytes_total{direction="to_client"}') == 300
    assert metric(text, "opencall_turn_auth_failures_total") == 1
    assert text.count("# TYPE opencall_turn_relayed_packets_total counter") == 1
    running = False
    assert monitor.state() == "down"
    monitor.detach()
    assert monitor.state() == "not running"
    assert RelayMonitor(enabled=False).state() == "off"


def test_a_relay_advertised_on_loopback_only_is_not_ok() -> None:
    """Running, but phones are told to reach it on themselves: ``loopback only`` (503 in /healthz)."""
    from opencall.relay.monitor import RelayMonitor

    monitor = RelayMonitor(enabled=True, loopback_only=True)
    assert monitor.state() == "not running"
    running = True
    monitor.attach(dict, running=lambda: running)
    assert monitor.state() == "loopback only"
    running = False
    assert monitor.state() == "down"
    assert RelayMonitor(enabled=False, loopback_only=True).state() == "off"
