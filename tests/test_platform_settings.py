"""Choosing a platform: --backend, --option KEY=VALUE, a profile's backend and options table, and
each backend's public base URL when none is configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessionscope.backends.registry import _BUILTIN, DEFAULT_URLS, default_url
from sessionscope.config import ConfigError, parse_options, resolve


def test_every_platform_is_registered_with_its_public_base() -> None:
    names = {"native", "everruns", "vectara", "agentinbox", "ag2trust", "viben"}
    assert set(_BUILTIN) == names
    assert set(DEFAULT_URLS) == names
    assert default_url("everruns") == "https://app.everruns.com/api"
    assert default_url("agentinbox") == "https://agentinbox.in/api/v1"
    assert default_url("ag2trust") == "https://api.ag2trust.com"
    assert default_url("viben") == "http://127.0.0.1:18790"
    assert default_url("vectara") == "https://api.vectara.io"


def test_a_profile_chooses_the_backend_and_its_options(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        'current = "evr"\n'
        "[profiles.evr]\n"
        'backend = "everruns"\n'
        'api_key_env = "EVR_TOKEN"\n'
        "[profiles.evr.options]\n"
        'org_id = "org_1"\n'
        "poll_interval = 5\n",
        encoding="utf-8",
    )
    settings = resolve(environ={"EVR_TOKEN": "evr_pat_x"}, path=path)
    assert settings.backend == "everruns"
    assert settings.url == "https://app.everruns.com/api"
    assert settings.api_key == "evr_pat_x"
    assert settings.options == {"org_id": "org_1", "poll_interval": 5}
    # A flag overrides the profile key by key.
    flagged = resolve(environ={}, path=path, options={"org_id": "org_2"}, url="http://h:1")
    assert flagged.options == {"org_id": "org_2", "poll_interval": 5}
    assert flagged.url == "http://h:1"


def test_a_profile_options_must_be_a_table(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[profiles.x]\noptions = "org_id=1"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="options must be a table"):
        resolve(profile="x", environ={}, path=path)


def test_option_flags_parse() -> None:
    assert parse_options(["org_id=org_1", "a=b=c", "empty="]) == {
        "org_id": "org_1",
        "a": "b=c",
        "empty": "",
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_options(["novalue"])
