"""Command line entry point. Heavy modules (Textual, the server) are imported inside commands so
that each command pays only for what it uses."""

from __future__ import annotations

import click


@click.group(invoke_without_command=True)
@click.pass_context
def main(ctx: click.Context) -> None:
    """sessionscope: a terminal console for AI-agent sessions."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--db", "db", default=None, help="A SQLite file path or a SQLAlchemy URL.")
@click.option("--api-key", "api_keys", multiple=True, help="[ORG:]KEY; repeatable.")
@click.option("--simulate", is_flag=True, help="Run the agent simulator.")
@click.option("--rate", default=2.0, show_default=True, help="Simulated events per second.")
@click.option("--seed", default=None, type=int, help="Simulator seed, for repeatable runs.")
def serve(
    host: str,
    port: int,
    db: str | None,
    api_keys: tuple[str, ...],
    simulate: bool,
    rate: float,
    seed: int | None,
) -> None:
    """Run the reference Sessions API server."""
    from sessionscope.server.runner import serve_forever

    serve_forever(
        host=host,
        port=port,
        db=db,
        api_keys=list(api_keys),
        simulate=simulate,
        rate=rate,
        seed=seed,
    )


@main.command()
@click.option("--rate", default=2.0, show_default=True, help="Simulated events per second.")
@click.option("--seed", default=None, type=int)
def demo(rate: float, seed: int | None) -> None:
    """Run the reference server with its simulator on a free loopback port."""
    from sessionscope.server.runner import serve_forever

    serve_forever(
        host="127.0.0.1",
        port=0,
        db=None,
        api_keys=[],
        simulate=True,
        rate=rate,
        seed=seed,
        temporary=True,
    )


@main.command("export")
@click.argument("session_id")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, writable=True),
    help="Folder to write into; rerun with the same folder to resume.",
)
@click.option("--url", envvar="SESSIONSCOPE_URL", default=None, help="Sessions API base URL.")
@click.option("--api-key", envvar="SESSIONSCOPE_API_KEY", default=None, help="API key.")
@click.option("--backend", "backend_name", default="native", show_default=True)
def export_command(
    session_id: str, out_dir: str, url: str | None, api_key: str | None, backend_name: str
) -> None:
    """Export a session, its events (JSON Lines) and its artifacts to a folder; resumable."""
    from sessionscope.backends.base import BackendConfig, BackendError
    from sessionscope.backends.registry import create_backend
    from sessionscope.export import ExportError, run_export_command

    config = BackendConfig(name=backend_name, api_key=api_key)
    if url:
        config = BackendConfig(name=backend_name, url=url, api_key=api_key)
    try:
        result = run_export_command(create_backend(config), session_id, out_dir)
    except (BackendError, ExportError) as error:
        raise click.ClickException(str(error)) from error
    except KeyboardInterrupt:
        raise click.ClickException("interrupted; run the same command again to resume") from None
    click.echo(
        f"exported {result.events_written:,} events ({result.events_added:,} new) and "
        f"{result.artifacts_written + result.artifacts_skipped:,} artifacts to {result.out_dir}",
        err=True,
    )
