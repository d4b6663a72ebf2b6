"""``python -m turn --config FILE``: the relay on its own, as tests and benchmarks run it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aioice.stun import Class, Message, Method

from tests.support import free_port
from turn import stun
from turn.config import RelayConfig, config_from_mapping, load_config


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "turn", *args], capture_output=True, text=True, timeout=30,
                          check=False)


def test_help_documents_the_config() -> None:
    result = run("--help")
    assert result.returncode == 0
    for key in ("secret", "listen", "relay_ports", "allowed_peers", "tls_port"):
        assert key in result.stdout


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "turn.yaml"
    path.write_text("secret: x\nlisten: 127.0.0.1\nlisten_port: 3478\n")
    result = run("--config", str(path))
    assert result.returncode == 2
    assert "listen_port: unknown key" in result.stderr


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"listen": "127.0.0.1"}, "secret: is required"),
        ({"secret": "x", "listen": "0.0.0.0"}, "relay_ip: is required"),
        ({"secret": "x", "listen": "127.0.0.1", "relay_ports": "9-1"}, "relay_ports"),
        ({"secret": "x", "listen": "127.0.0.1", "allowed_peers": ["10.0.0.0/33"]}, "allowed_peers"),
        ({"secret": "x", "listen": "127.0.0.1", "tls_port": 5349}, "tls_port: needs"),
        ({"secret": "x", "listen": "localhost"}, "listen: must be an IP address"),
        ({"secret": "x", "listen": "127.0.0.1", "port": "3478"}, "port: must be an integer"),
        ({"secret": 12, "listen": "127.0.0.1"}, "secret: must be a non-empty string"),
        ({"secret": "x", "listen": "127.0.0.1", "unauthenticated_rate": "fast"}, "must be a number"),
        ({"secret": "x", "listen": "127.0.0.1", "allocation_lifetime": 7200}, "allocation_lifetime"),
    ],
)
def test_config_errors(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config_from_mapping(raw, Path("/"))


def test_json_config_with_relative_tls_paths(tmp_path: Path) -> None:
    path = tmp_path / "turn.json"
    path.write_text(json.dumps({"secret": "x", "listen": "127.0.0.1", "tls_port": 5349, "tls_cert": "c.pem",
                                "tls_key": "k.pem", "relay_ports": [50000, 50010],
                                "allowed_peers": ["auto", "127.0.0.0/8"]}))
    config = load_config(path)
    assert config == RelayConfig(secret="x", listen="127.0.0.1", tls_port=5349, tls_cert=tmp_path / "c.pem",
                                 tls_key=tmp_path / "k.pem", relay_ports=(50000, 50010),
                                 allowed_peers=("auto", "127.0.0.0/8"))


def test_runs_answers_binding_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port(socket.SOCK_DGRAM)
    path = tmp_path / "turn.yaml"
    path.write_text(f"secret: s\nlisten: 127.0.0.1\nport: {port}\nallowed_peers: [127.0.0.0/8]\n")
    process = subprocess.Popen([sys.executable, "-m", "turn", "--config", str(path)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            probe.settimeout(5)
            request = Message(Method.BINDING, Class.REQUEST)
            probe.sendto(bytes(request), ("127.0.0.1", port))
            response = stun.decode(probe.recv(2048))
            assert response.message.transaction_id == request.transaction_id
            assert response.attributes["XOR-MAPPED-ADDRESS"] == probe.getsockname()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
