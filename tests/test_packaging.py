"""The distribution ships every Python package of the source tree and the web client; the .deb's config."""

import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from opencall.config import parse_config

ROOT = Path(__file__).resolve().parent.parent


def test_every_source_package_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("opencall", "turn")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages"
    assert "opencall_web" in listed


def test_the_installed_config_is_the_example_with_system_paths_and_mdns_on(tmp_path: Path) -> None:
    """/etc/opencall/opencall.yaml of the .deb: what packaging/build-deb writes with installed_config.py."""
    example = (ROOT / "opencall.yaml.example").read_text()
    done = subprocess.run([sys.executable, str(ROOT / "packaging" / "installed_config.py"),
                           str(ROOT / "opencall.yaml.example")], capture_output=True, text=True, check=True)
    raw = yaml.safe_load(done.stdout)
    installed, default = parse_config(raw, tmp_path), parse_config(yaml.safe_load(example), tmp_path)
    assert (str(installed.data_dir), str(installed.log_file)) == ("/var/lib/opencall", "/var/log/opencall/opencall.log")
    assert installed.mdns.enabled and not default.mdns.enabled  # an appliance announces itself on the LAN
    assert installed.mdns.name == "auto"
    # Nothing else differs: the file is the example, comments included, with three lines changed.
    lines = done.stdout.splitlines()
    lines = lines[len(lines) - len(example.splitlines()):]
    changed = [(a.split("#")[0].strip(), b.split("#")[0].strip())
               for a, b in zip(example.splitlines(), lines, strict=True) if a != b]
    assert changed == [("data_dir: ./data", "data_dir: /var/lib/opencall"),
                       ("log_file: ./logs/opencall.log", "log_file: /var/log/opencall/opencall.log"),
                       ("enabled: false", "enabled: true")]
