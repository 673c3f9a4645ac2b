"""Command line entry point. Heavy modules (Textual, the server) are imported inside commands so
that each command pays only for what it uses."""

from __future__ import annotations

import sys
from typing import Any

import click


@click.group(invoke_without_command=True)
@click.option("--url", default=None, help="Sessions API base URL [env SESSIONSCOPE_URL].")
@click.option(
    "--api-key", default=None, help="API key [env SESSIONSCOPE_API_KEY]; never logged or shown."
)
@click.option(
    "--backend",
    "backend_name",
    default=None,
    help="Platform: native (default), everruns, vectara, agentinbox, ag2trust, viben.",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A backend option, e.g. org_id=org_... for everruns; repeatable.",
)
@click.option("--profile", default=None, help="A profile from `sessionscope config path`.")
@click.option("--read-only", is_flag=True, help="Disable every key that changes something.")
@click.option("--bell", is_flag=True, help="Ring the terminal bell on a new pending action.")
@click.option(
    "--notify",
    is_flag=True,
    help="Also send a desktop notification (OSC 9 / OSC 777) on a new pending action.",
)
@click.option(
    "--all-profiles", is_flag=True, help="Open every profile at once: one list, one inbox."
)
@click.option(
    "--profiles", "profile_names", default=None, help="Open these profiles at once: a,b,c."
)
@click.pass_context
def main(
    ctx: click.Context,
    url: str | None,
    api_key: str | None,
    backend_name: str | None,
    options: tuple[str, ...],
    profile: str | None,
    read_only: bool,
    bell: bool,
    notify: bool,
    all_profiles: bool,
    profile_names: str | None,
) -> None:
    """sessionscope: a terminal console for AI-agent sessions.

    Without a command, opens the console on the configured server.
    """
    if ctx.invoked_subcommand is not None:
        return
    from sessionscope.config import ConfigError, parse_options, resolve

    if all_profiles or profile_names:
        run_fleet_console(
            None if all_profiles else [n.strip() for n in (profile_names or "").split(",")],
            read_only=read_only,
            bell=bell,
            notify=notify,
        )
        return

    try:
        settings = resolve(
            url=url,
            api_key=api_key,
            backend=backend_name,
            profile=profile,
            read_only=read_only,
            options=parse_options(options),
        )
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    run_console(
        settings.url,
        settings.api_key,
        backend_name=settings.backend,
        read_only=settings.read_only,
        bell=bell,
        notify=notify or settings.notify,
        options=_with_profile(
            _with_key_note(settings.options, settings.key_note), settings.profile
        ),
        keymap=settings.keymap,
    )


def _with_key_note(options: dict[str, Any], key_note: str | None) -> dict[str, Any]:
    """Backend options carrying, for a rejected key, why there may be none."""
    return {**options, "auth_hint": key_note} if key_note else dict(options)


def _with_profile(options: dict[str, Any], profile: str | None) -> dict[str, Any]:
    """Backends that keep local state per profile (AG2Trust's record) learn which one it is."""
    return {"profile": profile, **options} if profile else dict(options)


def _import_httpx_without_its_command_line() -> None:
    """httpx 0.28 imports its own command-line tool at import (``httpx._main``: rich's console,
    progress, syntax and table, pygments), about a tenth of the console's start, and installs a
    stub ``httpx.main`` if that import fails. The console never runs httpx's command line, so
    import httpx once with that submodule blocked (a ``None`` entry in ``sys.modules`` makes its
    import raise ImportError) and unblock it afterwards, so an explicit ``import httpx._main``
    later still works. A release that imports it lazily makes this a no-op."""
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        return
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        import httpx  # noqa: F401
    finally:
        if sys.modules.get("httpx._main", False) is None:
            del sys.modules["httpx._main"]


def run_console(
    url: str,
    api_key: str | None,
    *,
    backend_name: str = "native",
    read_only: bool = False,
    bell: bool = False,
    notify: bool = False,
    options: dict[str, Any] | None = None,
    timeout: float = 10.0,
    about: str | None = None,
    loading_note: str | None = None,
    keymap: dict[str, str] | None = None,
) -> None:
    """Open the console. Connection problems are shown inside it, never as a traceback."""
    from sessionscope.tui import collector

    # Before the imports: their objects are the bulk of what the collector would walk.
    collector.pause_for_startup()
    _import_httpx_without_its_command_line()
    from sessionscope.backends import BackendConfig, BackendError, create_backend

    try:
        backend = create_backend(
            BackendConfig(
                name=backend_name,
                url=url,
                api_key=api_key,
                timeout=timeout,
                options=dict(options or {}),
            )
        )
    except BackendError as error:
        raise click.ClickException(error.message) from None
    except (ValueError, TypeError) as error:
        raise click.ClickException(f"cannot use {url!r}: {error}") from None
    from sessionscope.audit import AuditLog
    from sessionscope.backends.audited import AuditedBackend
    from sessionscope.tui.app import SessionScopeApp

    profile = (options or {}).get("profile")
    SessionScopeApp(
        AuditedBackend(backend, AuditLog(), profile=profile),
        read_only=read_only,
        bell=bell,
        notify_desktop=notify,
        about=about,
        loading_note=loading_note,
        keymap=keymap,
    ).run()


def run_fleet_console(
    names: list[str] | None,
    *,
    read_only: bool = False,
    bell: bool = False,
    notify: bool = False,
) -> None:
    """Open several profiles at once (``None``: every profile in the file)."""
    from sessionscope.tui import collector

    collector.pause_for_startup()
    _import_httpx_without_its_command_line()
    from sessionscope.audit import AuditLog
    from sessionscope.backends import BackendConfig, BackendError, create_backend
    from sessionscope.backends.audited import AuditedBackend
    from sessionscope.backends.fleet import FleetBackend, FleetMember
    from sessionscope.config import ConfigError, load_profiles, resolve

    try:
        known = load_profiles()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    chosen = sorted(known.profiles) if names is None else [n for n in names if n]
    if not chosen:
        raise click.ClickException(f"no profiles in {known.path}")
    log = AuditLog()
    members = []
    try:
        for name in chosen:
            settings = resolve(profile=name, read_only=read_only)
            backend = create_backend(
                BackendConfig(
                    name=settings.backend,
                    url=settings.url,
                    api_key=settings.api_key,
                    options=_with_profile(
                        _with_key_note(settings.options, settings.key_note), name
                    ),
                )
            )
            members.append(
                FleetMember(
                    name, AuditedBackend(backend, log, profile=name), read_only=settings.read_only
                )
            )
        fleet = FleetBackend(members)
    except (ConfigError, BackendError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    from sessionscope.tui.app import SessionScopeApp

    SessionScopeApp(fleet, bell=bell, notify_desktop=notify or known.notify).run()


@main.command("audit")
@click.option("--profile", default=None, help="Only this profile's sends.")
@click.option("--session", "session_id", default=None, help="Only this session's sends.")
@click.option("--operation", default=None, help="Only this operation (decide, close, ...).")
@click.option("--outcome", default=None, help="Only this outcome (sent, failed, interrupted...).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
def audit_command(
    profile: str | None,
    session_id: str | None,
    operation: str | None,
    outcome: str | None,
    as_json: bool,
) -> None:
    """Print the operator's trail: every decision and change the console sent."""
    from sessionscope import audit
    from sessionscope.backends._http import neutralise_detail

    log = audit.AuditLog()
    records = audit.matching(
        log.records(),
        profile=profile,
        session_id=session_id,
        operation=operation,
        outcome=outcome,
    )
    if as_json:
        for record in records:
            click.echo(audit.as_json(record))
        return
    if not records:
        click.echo(f"nothing recorded in {log.path}", err=True)
        return
    for record in records:
        what = " ".join(
            part
            for part in (
                record.operation,
                record.choice or "",
                f"item {record.item_id}" if record.item_id else "",
            )
            if part
        )
        detail = f" ({record.detail})" if record.detail else ""
        reason = f" reason: {record.reason!r}" if record.reason else ""
        line = (
            f"{record.time}  {record.profile or '-'}  {record.backend}  "
            f"{record.session_id or '-'}  {what}  -> {record.outcome}{detail}{reason}"
        )
        # Ids and details come from platforms: never let them drive the terminal.
        click.echo(neutralise_detail(line, limit=2000))


@main.group("config")
def config_group() -> None:
    """Connection profiles (like kube contexts)."""


@config_group.command("path")
def config_path_command() -> None:
    """Print where the profile file lives."""
    from sessionscope.config import config_path

    click.echo(str(config_path()))


@config_group.command("list")
def config_list_command() -> None:
    """List the profiles (keys are never printed)."""
    import os

    from sessionscope.config import ConfigError, load_profiles

    try:
        profiles = load_profiles()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    if not profiles.profiles:
        click.echo(f"no profiles in {profiles.path}")
        return
    for name, profile in sorted(profiles.profiles.items()):
        marker = "*" if name == profiles.current else " "
        key = profile.key_summary(os.environ)
        mode = ", read-only" if profile.read_only else ""
        click.echo(f"{marker} {name}  {profile.url or '(default url)'}  ({key}{mode})")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--db", "db", default=None, help="A SQLite file path or a SQLAlchemy URL.")
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    help="[ORG:]KEY or ORG:KEY:ROLE (agent, operator, viewer; none: every right); repeatable.",
)
@click.option("--simulate", is_flag=True, help="Run the agent simulator.")
@click.option("--rate", default=2.0, show_default=True, help="Simulated events per second.")
@click.option("--seed", default=None, type=int, help="Simulator seed, for repeatable runs.")
# The demo's own plumbing: it binds the socket and owns the server's lifetime.
@click.option("--listen-fd", default=None, type=int, hidden=True)
@click.option("--exit-with-parent", is_flag=True, hidden=True)
@click.option("--nice", "niceness", default=0, type=int, hidden=True)
def serve(
    host: str,
    port: int,
    db: str | None,
    api_keys: tuple[str, ...],
    simulate: bool,
    rate: float,
    seed: int | None,
    listen_fd: int | None,
    exit_with_parent: bool,
    niceness: int,
) -> None:
    """Run the reference Sessions API server."""
    if niceness:
        import os

        # Before the server's imports: the demo's console, started at the same moment, paints
        # first on a machine with few cores.
        os.nice(niceness)
    from sessionscope.server.runner import serve_forever

    serve_forever(
        host=host,
        port=port,
        db=db,
        api_keys=list(api_keys),
        simulate=simulate,
        rate=rate,
        seed=seed,
        listen_fd=listen_fd,
        exit_with_parent=exit_with_parent,
    )


@main.command()
@click.option("--rate", default=2.0, show_default=True, help="Simulated events per second.")
@click.option("--seed", default=None, type=int, help="Simulator seed, for repeatable runs.")
@click.option("--read-only", is_flag=True, help="Disable every key that changes something.")
@click.option("--bell", is_flag=True, help="Ring the terminal bell on a new pending action.")
def demo(rate: float, seed: int | None, read_only: bool, bell: bool) -> None:
    """Run the reference server with its simulator and open the console on it."""
    from sessionscope.demo import DemoServer

    server = DemoServer(rate=rate, seed=seed)
    try:
        server.start()
        about = (
            f"Demo server: {server.url}   API key: {server.api_key}\n"
            f"Another console:  sessionscope --url {server.url} --api-key {server.api_key}\n"
            f"Export a session: sessionscope export SESSION_ID --out DIR --url {server.url} "
            f"--api-key {server.api_key}\n"
            "The server and its data last as long as this console."
        )
        run_console(
            server.url,
            server.api_key,
            read_only=read_only,
            bell=bell,
            # The first request waits in the socket's backlog while the server starts; on a busy
            # machine that can take longer than an ordinary request may.
            timeout=60.0,
            about=about,
            loading_note="starting the local server…",
        )
        failure = server.failure()
        if failure:
            raise click.ClickException(failure)
    finally:
        server.stop()


@main.command("export")
@click.argument("session_id")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, writable=True),
    help="Folder to write into; rerun with the same folder to resume.",
)
@click.option("--url", default=None, help="Sessions API base URL [env SESSIONSCOPE_URL].")
@click.option("--api-key", default=None, help="API key [env SESSIONSCOPE_API_KEY].")
@click.option("--backend", "backend_name", default=None, help="Backend dialect (default native).")
@click.option("--profile", default=None, help="A profile from `sessionscope config path`.")
@click.option("--option", "option_pairs", multiple=True, help="Backend option KEY=VALUE.")
def export_command(
    session_id: str,
    out_dir: str,
    url: str | None,
    api_key: str | None,
    backend_name: str | None,
    profile: str | None,
    option_pairs: tuple[str, ...],
) -> None:
    """Export a session, its events (JSON Lines) and its artifacts to a folder; resumable.

    Connects as the console does: flags, then environment, then the profile."""
    from pathlib import Path

    from sessionscope.backends.base import BackendConfig, BackendError
    from sessionscope.backends.registry import create_backend
    from sessionscope.config import ConfigError, parse_options, resolve
    from sessionscope.export import ExportError, run_export_command

    try:
        settings = resolve(
            url=url,
            api_key=api_key,
            backend=backend_name,
            profile=profile,
            options=parse_options(option_pairs),
        )
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    config = BackendConfig(
        name=settings.backend,
        url=settings.url,
        api_key=settings.api_key,
        options=_with_key_note(settings.options, settings.key_note),
    )
    target = Path(out_dir)
    existed = target.exists()
    try:
        result = run_export_command(create_backend(config), session_id, out_dir)
    except (BackendError, ExportError) as error:
        _remove_if_empty(target, existed)
        raise click.ClickException(f"{error} [{settings.backend} at {settings.url}]") from error
    except KeyboardInterrupt:
        raise click.ClickException("interrupted; run the same command again to resume") from None
    click.echo(
        f"exported {result.events_written:,} events ({result.events_added:,} new) and "
        f"{result.artifacts_written + result.artifacts_skipped:,} artifacts to {result.out_dir}",
        err=True,
    )


def _remove_if_empty(folder: Any, existed: bool) -> None:
    """A failed first export leaves no empty folders behind (a resumable partial one stays:
    rmdir only removes a folder with nothing in it)."""
    import contextlib
    import os

    if existed or not folder.is_dir():
        return
    for path, _, _ in sorted(os.walk(folder), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):
            os.rmdir(path)


@main.command("webhook")
@click.option(
    "--listen",
    default="127.0.0.1:8787",
    show_default=True,
    metavar="HOST:PORT",
    help="Where to receive deliveries (loopback unless you say otherwise).",
)
@click.option("--record", "record", default=None, help="The AG2Trust record to append to.")
@click.pass_context
def webhook_command(ctx: click.Context, listen: str, record: str | None) -> None:
    """Receive AG2Trust completion webhooks into the local record the console follows.

    Deliveries must be signed (X-Webhook-Signature: sha256=HMAC of the body with the API key);
    others get 401 and are not recorded. Takes --api-key, --profile and --option from before the
    command, as the console does: `sessionscope --profile ag2 webhook --listen 127.0.0.1:8787`.
    """
    from sessionscope.backends.ag2trust import record_path_for
    from sessionscope.backends.base import BackendConfig, BackendError
    from sessionscope.config import ConfigError, parse_options, resolve
    from sessionscope.webhook import is_loopback, parse_listen, serve

    parent = ctx.parent.params if ctx.parent is not None else {}
    try:
        settings = resolve(
            url=parent.get("url"),
            api_key=parent.get("api_key"),
            backend=parent.get("backend_name"),
            profile=parent.get("profile"),
            options=parse_options(parent.get("options") or ()),
        )
        host, _ = parse_listen(listen)
    except (ConfigError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    # "native" is the default when neither a flag nor the profile names one.
    if settings.backend not in ("ag2trust", "native"):
        raise click.ClickException(
            f"webhooks are received for AG2Trust; the profile's backend is {settings.backend}"
        )
    if not settings.api_key:
        raise click.ClickException(
            "the API key is needed to check signatures: --api-key, SESSIONSCOPE_API_KEY or a "
            "profile's api_key_env"
        )
    options = _with_profile(settings.options, settings.profile)
    if record:
        options["record"] = record
    path = record_path_for(BackendConfig(name="ag2trust", url=settings.url, options=options))
    if not is_loopback(host):
        click.echo(f"warning: listening on {host}, beyond this machine", err=True)
    click.echo(f"receiving AG2Trust webhooks on {listen} into {path}", err=True)
    try:
        serve(listen, path, settings.api_key)
    except BackendError as error:
        raise click.ClickException(error.message) from None
