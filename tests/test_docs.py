"""The docs hold true to the tree: every config key documented with its range, every link and cited section
resolving, every module path of docs/architecture.md existing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from opencall.config import ConfigError, parse_config

REPO = Path(__file__).resolve().parent.parent
DOCS = sorted((REPO / "docs").glob("*.md"))
MARKDOWN = [*DOCS, REPO / "README.md"]
EXAMPLE = yaml.safe_load((REPO / "opencall.yaml.example").read_text(encoding="utf-8"))
# A row of docs/configuration.md's "Every key" table: | `key` | type | `default` | range or values |
KEY_ROW = re.compile(r"^\| `([a-z_.]+)` \| ([^|]+) \| `([^`]*)` \| (.+) \|$", re.MULTILINE)
INT_RANGE = re.compile(r"^(\d+) \.\. (\d+)\b")
NUMBER_RANGE = re.compile(r"^more than (\d+), at most (\d+)\b")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# A section cited in prose: docs/operations.md, "Upgrade" or `docs/api.md` "Session resume".
CITED = re.compile(r"\b([a-z]+\.md)`?,?\s+\(?\"([^\"]+)\"")
# A path of this repository (not /etc/opencall/…), and the test a node id names: tests/test_docs.py::test_x.
REPO_PATH = re.compile(
    r"(?<![\w/.~-])((?:opencall|turn|web|tests|bench|docs|packaging|scripts|systemd)/[\w./-]*\w/?)(?:::(\w+))?")


def _example_keys() -> dict[str, Any]:
    """Every key of opencall.yaml.example as ``section.key`` (top-level keys bare) with its value."""
    keys = {}
    for name, value in EXAMPLE.items():
        if isinstance(value, dict):
            keys.update({f"{name}.{key}": item for key, item in value.items()})
        else:
            keys[name] = value
    return keys


def _key_rows() -> dict[str, tuple[str, str, str]]:
    text = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    return {key: (kind, default, values) for key, kind, default, values in KEY_ROW.findall(text)}


def _raw(key: str, value: Any) -> dict[str, Any]:
    section, _, name = key.rpartition(".")
    return {section: {name: value}} if section else {name: value}


def _outside(body: str) -> str:
    """``body`` without its fenced code blocks."""
    return re.sub(r"^```.*?^```", "", body, flags=re.MULTILINE | re.DOTALL)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces become hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _headings(path: Path) -> list[str]:
    return re.findall(r"^#{1,6} +(.+?) *#*$", _outside(path.read_text(encoding="utf-8")), re.MULTILINE)


def _anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for heading in _headings(path):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_every_example_key_is_documented_with_type_default_and_range() -> None:
    rows = _key_rows()
    keys = _example_keys()
    missing = sorted(set(keys) - set(rows))
    assert not missing, f"docs/configuration.md 'Every key' has no row for {missing}"
    unknown = sorted(set(rows) - set(keys))
    assert not unknown, f"docs/configuration.md documents keys opencall.yaml.example lacks: {unknown}"
    for key, value in keys.items():
        kind, default, values = rows[key]
        assert kind.strip() and values.strip(), f"{key}: type and range must be given"
        assert yaml.safe_load(default) == value, f"{key}: documented default {default!r}, example has {value!r}"


def test_the_example_holds_the_embedded_defaults() -> None:
    example = parse_config(EXAMPLE, REPO)
    defaults = parse_config({}, REPO)
    assert example == defaults


@pytest.mark.parametrize("key", sorted(key for key, row in _key_rows().items() if INT_RANGE.match(row[2])))
def test_documented_integer_ranges_are_the_validators(key: str) -> None:
    """Both ends of a documented ``low .. high`` are accepted and the integers beyond them refused."""
    match = INT_RANGE.match(_key_rows()[key][2])
    assert match is not None
    low, high = int(match[1]), int(match[2])
    for value in (low, high):
        try:
            parse_config(_raw(key, value), REPO)
        except ConfigError as exc:  # a rule between two keys may refuse it; this key's own range must not
            assert not str(exc).startswith(f"{key}:"), f"documented {low} .. {high}, refused: {exc}"
    for wrong in (low - 1, high + 1, low + 0.5):  # an integer key refuses a fraction too
        with pytest.raises(ConfigError, match=rf"^{re.escape(key)}: "):
            parse_config(_raw(key, wrong), REPO)


@pytest.mark.parametrize("key", sorted(key for key, row in _key_rows().items() if NUMBER_RANGE.match(row[2])))
def test_documented_number_ranges_are_the_validators(key: str) -> None:
    """``more than low, at most high``: a fraction above low and high itself are accepted, low and beyond high
    refused."""
    match = NUMBER_RANGE.match(_key_rows()[key][2])
    assert match is not None
    low, high = int(match[1]), int(match[2])
    for value in (low + 0.5, high):
        parse_config(_raw(key, value), REPO)
    for value in (low, high + 0.5):
        with pytest.raises(ConfigError, match=rf"^{re.escape(key)}: "):
            parse_config(_raw(key, value), REPO)


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda path: path.relative_to(REPO).as_posix())
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for target in LINK.findall(_outside(path.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no heading #{anchor}")
    assert not broken, f"{path.name}: {broken}"


def _broken_citations(path: Path) -> list[str]:
    """The sections ``path`` cites as ``docs/api.md "Session resume"`` that start no heading of that file (a
    citation may run over a comment's line break)."""
    broken = []
    for name, section in CITED.findall(path.read_text(encoding="utf-8")):
        cited = REPO / name if name == "README.md" else REPO / "docs" / name
        headings = [heading.lower() for heading in _headings(cited)] if cited.exists() else []
        words = " ".join(word for word in section.split() if word not in ("#", "//", "*"))
        if not any(heading.startswith(words.lower()) for heading in headings):
            broken.append(f'{name} "{words}"')
    return broken


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda path: path.relative_to(REPO).as_posix())
def test_sections_cited_in_the_docs_exist(path: Path) -> None:
    broken = _broken_citations(path)
    assert not broken, f"{path.name} cites sections that do not exist: {broken}"


def test_sections_cited_in_the_code_exist() -> None:
    code = [*REPO.glob("opencall/**/*.py"), *REPO.glob("turn/**/*.py"), *REPO.glob("web/static/**/*.js"),
            *REPO.glob("bench/*.py"), *REPO.glob("tests/**/*.py")]
    broken = {path.relative_to(REPO).as_posix(): found for path in code if (found := _broken_citations(path))}
    assert not broken, f"code comments cite doc sections that do not exist: {broken}"


def _missing_paths(path: Path) -> list[str]:
    """The repository paths ``path`` names that do not exist, and the test node ids naming no test."""
    missing = []
    for named, test in sorted(set(REPO_PATH.findall(path.read_text(encoding="utf-8")))):
        target = REPO / named
        if not target.exists():
            missing.append(named)
        elif test and target.is_file() and not re.search(rf"\bdef {test}\b", target.read_text(encoding="utf-8")):
            missing.append(f"{named}::{test}")
    return missing


def test_architecture_names_only_modules_that_exist() -> None:
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert REPO_PATH.search(text), "docs/architecture.md names no module path"
    missing = _missing_paths(REPO / "docs" / "architecture.md")
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda path: path.relative_to(REPO).as_posix())
def test_paths_and_tests_named_in_the_docs_exist(path: Path) -> None:
    missing = _missing_paths(path)
    assert not missing, f"{path.name} names paths or tests that do not exist: {missing}"
