"""Profiles: precedence flag > environment > profile > default; secrets never in reprs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessionscope.config import ConfigError, config_path, load_profiles, resolve

PROFILES = """
current = "local"

[profiles.local]
url = "http://127.0.0.1:9000"
api_key = "local-secret"

[profiles.prod]
url = "https://sessions.example.com"
api_key_env = "PROD_KEY"
read_only = true
backend = "native"
"""


@pytest.fixture
def profile_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(PROFILES, encoding="utf-8")
    return path


def test_current_profile_is_used_by_default(profile_file: Path) -> None:
    settings = resolve(environ={}, path=profile_file)
    assert (settings.url, settings.api_key, settings.profile) == (
        "http://127.0.0.1:9000",
        "local-secret",
        "local",
    )
    assert "local-secret" not in repr(settings)


def test_named_profile_takes_its_key_from_the_environment(profile_file: Path) -> None:
    settings = resolve(profile="prod", environ={"PROD_KEY": "k-prod"}, path=profile_file)
    assert settings.url == "https://sessions.example.com"
    assert settings.api_key == "k-prod"
    assert settings.read_only is True


def test_flags_beat_environment_beat_profile(profile_file: Path) -> None:
    environ = {"SESSIONSCOPE_URL": "http://env:1", "SESSIONSCOPE_API_KEY": "env-key"}
    from_env = resolve(environ=environ, path=profile_file)
    assert (from_env.url, from_env.api_key) == ("http://env:1", "env-key")
    from_flags = resolve(
        url="http://flag:2", api_key="flag-key", environ=environ, path=profile_file
    )
    assert (from_flags.url, from_flags.api_key) == ("http://flag:2", "flag-key")


def test_no_file_means_defaults(tmp_path: Path) -> None:
    settings = resolve(environ={}, path=tmp_path / "missing.toml")
    assert settings.url == "http://127.0.0.1:8765"
    assert settings.backend == "native" and settings.api_key is None


def test_unknown_profile_names_the_known_ones(profile_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"no profile named 'staging'.*local, prod"):
        resolve(profile="staging", environ={}, path=profile_file)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("current = [", "not valid TOML"),
        ("[profiles.x]\nurl = 3\n", "url must be a string"),
        ("[profiles.x]\npassword = 'p'\n", "unknown setting"),
        ("profiles = 1\n", "must be a table"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_profiles(path)


def test_config_path_honours_the_override(tmp_path: Path) -> None:
    assert config_path({"SESSIONSCOPE_CONFIG": str(tmp_path / "c.toml")}) == tmp_path / "c.toml"
    assert config_path({}).name == "config.toml"


def test_a_key_variable_that_is_not_set_is_named(profile_file: Path) -> None:
    settings = resolve(profile="prod", environ={}, path=profile_file)
    assert settings.api_key is None
    assert settings.key_note is not None and "$PROD_KEY" in settings.key_note
    assert resolve(profile="prod", environ={"PROD_KEY": "k"}, path=profile_file).key_note is None
    flagged = resolve(profile="prod", api_key="flag", environ={}, path=profile_file)
    assert flagged.key_note is None


def test_config_list_tells_a_set_variable_from_an_unset_one(profile_file: Path) -> None:
    profiles = load_profiles(profile_file)
    assert profiles.profiles["prod"].key_summary({}) == "NO KEY: $PROD_KEY is not set"
    assert profiles.profiles["prod"].key_summary({"PROD_KEY": "x"}) == "key set from $PROD_KEY"
    assert profiles.profiles["local"].key_summary({}) == "key set"


def test_notify_is_read_from_the_top_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('notify = true\n[profiles.a]\nurl = "http://127.0.0.1:1"\n')
    assert load_profiles(path).notify is True
    assert resolve(profile="a", path=path, environ={}).notify is True
    path.write_text('notify = "yes"\n')
    with pytest.raises(ConfigError, match="'notify' must be true or false"):
        load_profiles(path)
    path.write_text("")
    assert load_profiles(path).notify is False
