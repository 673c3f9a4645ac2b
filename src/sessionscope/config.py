"""Connection profiles, like kube contexts: named (url, api key, backend) sets in one TOML file.

The file lives in the platform's config directory (``sessionscope config path`` prints it) and looks
like::

    current = "local"

    [profiles.local]
    url = "http://127.0.0.1:8765"
    api_key_env = "LOCAL_KEY"   # or api_key = "..." (then keep the file private: chmod 600)

    [profiles.prod]
    url = "https://sessions.example.com"
    api_key_env = "PROD_SESSIONS_KEY"
    read_only = true

    [profiles.everruns]
    backend = "everruns"          # native (default), everruns, vectara, agentinbox, ag2trust, viben
    api_key_env = "EVERRUNS_TOKEN"   # without url: the platform's public base
    [profiles.everruns.options]      # backend options, as ``--option KEY=VALUE`` gives them
    org_id = "org_..."

Precedence, highest first: command-line flag, environment variable (``SESSIONSCOPE_URL``,
``SESSIONSCOPE_API_KEY``), the chosen profile (``--profile`` or ``current``), built-in default.

No Textual import here: the CLI reads profiles before deciding whether to start the console.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8765"
DEFAULT_BACKEND = "native"
CONFIG_ENV = "SESSIONSCOPE_CONFIG"
URL_ENV = "SESSIONSCOPE_URL"
API_KEY_ENV = "SESSIONSCOPE_API_KEY"


class ConfigError(Exception):
    """A problem with the profile file or the chosen profile; the message is fit for an operator."""


@dataclass(frozen=True)
class Profile:
    name: str
    url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    #: Name of an environment variable holding the key, so the file need not hold secrets.
    api_key_env: str | None = None
    backend: str | None = None
    read_only: bool = False
    #: Backend options (``[profiles.NAME.options]``), e.g. Everruns' ``org_id``.
    options: dict[str, Any] = field(default_factory=dict)

    def resolved_api_key(self, environ: Mapping[str, str]) -> str | None:
        if self.api_key_env:
            return environ.get(self.api_key_env) or self.api_key
        return self.api_key

    def missing_key_note(self, environ: Mapping[str, str]) -> str | None:
        """Says which variable to set when the profile reads its key from one that is unset."""
        if self.api_key_env and not environ.get(self.api_key_env) and not self.api_key:
            return (
                f"profile {self.name!r} reads its API key from ${self.api_key_env}, "
                "which is not set"
            )
        return None

    def key_summary(self, environ: Mapping[str, str]) -> str:
        """``config list``'s word on the key, never the key itself."""
        if self.api_key_env:
            if environ.get(self.api_key_env):
                return f"key set from ${self.api_key_env}"
            if self.api_key:
                return f"key set; ${self.api_key_env} is not set"
            return f"NO KEY: ${self.api_key_env} is not set"
        return "key set" if self.api_key else "no key"


@dataclass(frozen=True)
class ProfileFile:
    path: Path
    profiles: dict[str, Profile] = field(default_factory=dict)
    current: str | None = None
    #: Binding id -> key(s), applied to the console (``App.set_keymap``).
    keymap: dict[str, str] = field(default_factory=dict)
    #: ``notify = true``: a new waiting item also sends a desktop notification (``--notify``).
    notify: bool = False


@dataclass(frozen=True)
class ConsoleSettings:
    """Everything the console needs to connect. ``api_key`` never appears in the repr."""

    url: str
    backend: str
    api_key: str | None = field(default=None, repr=False)
    read_only: bool = False
    profile: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    #: Why there may be no key (an unset variable the profile names), for the 401 that follows.
    key_note: str | None = None
    #: The profile file's ``[keymap]``: binding id -> key(s).
    keymap: dict[str, str] = field(default_factory=dict)
    #: The profile file's ``notify``.
    notify: bool = False


def config_dir() -> Path:
    from platformdirs import user_config_path

    return user_config_path("sessionscope", appauthor=False)


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    override = environ.get(CONFIG_ENV)
    if override:
        return Path(override).expanduser()
    return config_dir() / "config.toml"


def _profile_from(name: str, raw: Any, path: Path) -> Profile:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: [profiles.{name}] must be a table")
    known = {"url", "api_key", "api_key_env", "backend", "read_only", "options"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"{path}: profile {name!r} has unknown setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    for key in ("url", "api_key", "api_key_env", "backend"):
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"{path}: profile {name!r}: {key} must be a string")
    if "read_only" in raw and not isinstance(raw["read_only"], bool):
        raise ConfigError(f"{path}: profile {name!r}: read_only must be true or false")
    options = raw.get("options", {})
    if not isinstance(options, dict):
        raise ConfigError(f"{path}: profile {name!r}: options must be a table")
    return Profile(
        name=name,
        url=raw.get("url"),
        api_key=raw.get("api_key"),
        api_key_env=raw.get("api_key_env"),
        backend=raw.get("backend"),
        read_only=raw.get("read_only", False),
        options=dict(options),
    )


def load_profiles(path: Path | None = None) -> ProfileFile:
    """Read the profile file; a missing file means no profiles, not an error."""
    path = config_path() if path is None else path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ProfileFile(path=path)
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    import tomllib  # only with a profile file: most console starts have none (~4 ms)

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    profiles_raw = raw.get("profiles", {})
    if not isinstance(profiles_raw, dict):
        raise ConfigError(f"{path}: 'profiles' must be a table of [profiles.NAME] sections")
    profiles = {name: _profile_from(name, value, path) for name, value in profiles_raw.items()}
    current = raw.get("current")
    if current is not None and not isinstance(current, str):
        raise ConfigError(f"{path}: 'current' must be a profile name")
    keymap = _keymap_from(raw.get("keymap"), path)
    notify = raw.get("notify", False)
    if not isinstance(notify, bool):
        raise ConfigError(f"{path}: 'notify' must be true or false")
    return ProfileFile(path=path, profiles=profiles, current=current, keymap=keymap, notify=notify)


def _keymap_from(raw: Any, path: Path) -> dict[str, str]:
    """``[keymap]``: binding ids (``?`` in the console lists them) to keys, for every profile."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(name, str) and isinstance(keys, str) and keys.strip()
        for name, keys in raw.items()
    ):
        raise ConfigError(f'{path}: [keymap] maps binding ids to keys, e.g. "session.follow" = "F"')
    return dict(raw)


def resolve(
    *,
    url: str | None = None,
    api_key: str | None = None,
    backend: str | None = None,
    profile: str | None = None,
    read_only: bool = False,
    options: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> ConsoleSettings:
    """Combine flags, environment and the profile file into the settings the console uses."""
    environ = os.environ if environ is None else environ
    profile_file = load_profiles(path if path is not None else config_path(environ))
    name = profile or profile_file.current
    chosen: Profile | None = None
    if name is not None:
        chosen = profile_file.profiles.get(name)
        if chosen is None:
            known = ", ".join(sorted(profile_file.profiles)) or "none defined"
            raise ConfigError(
                f"no profile named {name!r} in {profile_file.path} (profiles: {known})"
            )
    backend_name = backend or (chosen.backend if chosen else None) or DEFAULT_BACKEND
    overridden = bool(api_key or environ.get(API_KEY_ENV))
    return ConsoleSettings(
        key_note=None if overridden or chosen is None else chosen.missing_key_note(environ),
        url=url
        or environ.get(URL_ENV)
        or (chosen.url if chosen else None)
        or default_url_for(backend_name),
        api_key=api_key
        or environ.get(API_KEY_ENV)
        or (chosen.resolved_api_key(environ) if chosen else None),
        backend=backend_name,
        read_only=read_only or (chosen.read_only if chosen else False),
        profile=chosen.name if chosen else None,
        # Flags override the profile's options key by key.
        options={**(chosen.options if chosen else {}), **(options or {})},
        keymap=profile_file.keymap,
        notify=profile_file.notify,
    )


def default_url_for(backend: str) -> str:
    """Without a URL anywhere, a backend talks to its platform's public base."""
    from sessionscope.backends.registry import default_url

    return default_url(backend)


def parse_options(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``KEY=VALUE`` strings (``--option``) as a dict; raises ConfigError on a malformed one."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option {pair!r}: expected KEY=VALUE")
        parsed[key.strip()] = value
    return parsed
