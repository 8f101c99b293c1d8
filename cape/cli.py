"""The `cape` command: serve, demo, migrate, worker, token, users, channels and import."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cape.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

app = typer.Typer(help="Cape: customer service, one relationship per customer.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
users_app = typer.Typer(help="Users.", no_args_is_help=True)
channels_app = typer.Typer(help="Channels (email mailboxes and addresses, chat widgets).", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(users_app, name="users")
app.add_typer(channels_app, name="channels")
import_app = typer.Typer(help="Import data from files.", no_args_is_help=True)
app.add_typer(import_app, name="import")

DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Overrides CAPE_DATA_DIR.")]
DatabaseOpt = Annotated[str | None, typer.Option("--database-url", help="Overrides CAPE_DATABASE_URL.")]
HostOpt = Annotated[str | None, typer.Option("--host", help="Overrides CAPE_HOST.")]
PortOpt = Annotated[int | None, typer.Option("--port", help="Overrides CAPE_PORT.")]
SmtpPortOpt = Annotated[
    int | None, typer.Option("--smtp-port", help="Receive mail by SMTP on this port (overrides CAPE_SMTP_PORT).")
]


def _settings(**overrides) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _session_factory(settings: Settings):
    from cape.db import create_db_engine, create_session_factory

    return create_session_factory(create_db_engine(settings))


@contextmanager
def _work(settings: Settings, *, migrate: bool = True) -> Iterator[Session]:
    """One unit of work for a command; a refusal (NotFound, InvalidInput...) is printed, exit status 1."""
    from cape.db import unit_of_work
    from cape.kit.errors import CapeError

    if migrate:
        _migrate(settings)
    try:
        with unit_of_work(_session_factory(settings)) as session:
            yield session
    except CapeError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc


def _migrate(settings: Settings) -> None:
    from cape.db import create_db_engine
    from cape.migrate import upgrade

    engine = create_db_engine(settings)
    upgrade(engine)
    engine.dispose()


@app.command()
def migrate(data_dir: DataDirOpt = None, database_url: DatabaseOpt = None) -> None:
    """Create or upgrade the database schema."""
    settings = _settings(data_dir=data_dir, database_url=database_url)
    _migrate(settings)
    typer.echo("database is up to date")


@app.command()
def serve(
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    smtp_port: SmtpPortOpt = None,
    workers: Annotated[int, typer.Option(help="Web server processes.")] = 1,
    jobs: Annotated[bool, typer.Option(help="Run background jobs in this process.")] = True,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate")] = True,
) -> None:
    """Run the web server (and, by default, the background jobs) in this process."""
    settings = _settings(data_dir=data_dir, database_url=database_url, host=host, port=port, smtp_port=smtp_port)
    if migrate_first:
        _migrate(settings)
    _run_server(settings, workers=workers, jobs=jobs)


@app.command()
def demo(
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    smtp_port: SmtpPortOpt = None,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Seed only.")] = False,
) -> None:
    """Seed demo users, customers and conversations (again: adds only what is missing), then serve."""
    from cape.db import unit_of_work
    from cape.demo import DEMO_USERS, seed_demo

    settings = _settings(data_dir=data_dir, database_url=database_url, host=host, port=port, smtp_port=smtp_port)
    _migrate(settings)
    with unit_of_work(_session_factory(settings)) as session:
        seed_demo(session, settings=settings)
    url = settings.base_url or f"http://{settings.host}:{settings.port}"
    typer.echo(f"\nCape is ready at {url}\n\nSign in with:")
    for user in DEMO_USERS:
        typer.echo(f"  {user.role.value:<10} {user.email:<22} password: {user.password}  ({user.language})")
    typer.echo(f"\nContact form for customers: {url}/contact    Website chat: {url}/widget/demo")
    typer.echo(f"API docs: {url}/docs\n")
    if not no_serve:
        _run_server(settings, workers=1, jobs=True)


def _run_server(settings: Settings, *, workers: int, jobs: bool) -> None:
    from cape.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    listener = None
    if settings.smtp_port:
        # One listener beside the web server, in this (parent) process even with several workers.
        from cape.channels.email.smtp_server import start_smtp_listener

        listener = start_smtp_listener(settings, _session_factory(settings))
        typer.echo(f"Receiving mail by SMTP on {settings.smtp_host}:{listener.port}")
    try:
        _serve(settings, workers=workers, jobs=jobs)
    finally:
        if listener is not None:
            listener.stop()


# The largest WebSocket frame the server reads at all (16 MiB by default): the sockets' own limits
# are far smaller, and a client is not let make the server hold more before they are checked.
WS_MAX_SIZE = 64 * 1024


def _serve(settings: Settings, *, workers: int, jobs: bool) -> None:
    import uvicorn

    from cape.app import create_app

    if workers > 1:
        if not settings.redis_url:
            typer.echo(
                "Warning: several workers without CAPE_REDIS_URL: live updates reach only the pages "
                "connected to the worker where the change happened (see docs/realtime.md).",
                err=True,
            )
        # Each worker process builds its own app from the same CAPE_* environment.
        import os

        os.environ.update({f"CAPE_{k.upper()}": str(v) for k, v in _env_overrides(settings).items()})
        consumer = None
        if jobs:  # the web workers serve requests; this supervising process runs the jobs
            from cape import jobs as job_queue

            _prepare_jobs(settings)
            consumer = job_queue.start_in_process_consumer()
        try:
            uvicorn.run("cape.app:create_app", factory=True, host=settings.host, port=settings.port,
                        workers=workers, access_log=False, log_config=None, ws_max_size=WS_MAX_SIZE,
                        forwarded_allow_ips=settings.forwarded_allow_ips)  # fmt: skip
        finally:
            if consumer is not None:
                consumer.stop(graceful=True)
        return
    application = create_app(settings, run_jobs=jobs)
    uvicorn.run(application, host=settings.host, port=settings.port, access_log=False, log_config=None,
                ws_max_size=WS_MAX_SIZE, forwarded_allow_ips=settings.forwarded_allow_ips)  # fmt: skip


def _prepare_jobs(settings: Settings) -> None:
    """What a process that runs jobs needs, as the app does it: the database, connectors, senders, tasks."""
    from cape import jobs
    from cape.actions import connectors
    from cape.channels import registry as channels

    jobs.configure(_session_factory(settings), settings)
    connectors.configure(settings)
    channels.setup(settings)
    jobs.load_tasks()
    # What the jobs change reaches agents' screens through Redis (without it, only an in-process
    # consumer's events reach the web process it runs in).
    from cape.realtime import bridge, hub

    hub.configure(redis_url=settings.redis_url, channel=settings.realtime_channel)
    bridge.install()


def _env_overrides(settings: Settings) -> dict[str, object]:
    return {"data_dir": settings.data_dir, "database_url": settings.database_url,
            "host": settings.host, "port": settings.port}  # fmt: skip


@app.command()
def worker(
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    threads: Annotated[int, typer.Option(help="Worker threads.")] = 2,
    periodic: Annotated[
        bool, typer.Option("--periodic/--no-periodic", help="Schedule the periodic jobs (leave on in one worker only).")
    ] = True,
) -> None:
    """Run background jobs only (for deployments that split web and workers)."""
    from cape import jobs
    from cape.channels.email.service import log_insecure_transports
    from cape.logs import configure_logging

    settings = _settings(data_dir=data_dir, database_url=database_url)
    configure_logging(settings.log_level, settings.log_format)
    _prepare_jobs(settings)
    log_insecure_transports(jobs.session_factory(), settings=settings)
    # SIGTERM, which service managers and containers send to stop a process, lets the running jobs
    # finish (for up to a minute) instead of dropping them half-done; Ctrl-C stops at once.
    consumer = jobs.huey.create_consumer(
        workers=threads, worker_type="thread", periodic=periodic, graceful_signal="TERM", shutdown_timeout=60
    )
    consumer.run()


@token_app.command("create")
def token_create(
    email: Annotated[str, typer.Option("--email", help="The user the token acts as.")],
    name: Annotated[str, typer.Option("--name", help="A label for the token.")] = "cli",
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Print a new API token for a user (shown once; store it safely)."""
    from cape.auth.service import create_api_token, get_user_by_email

    with _work(_settings(data_dir=data_dir, database_url=database_url)) as session:
        _, plain = create_api_token(session, user=get_user_by_email(session, email=email), name=name)
    typer.echo(plain)


@token_app.command("revoke")
def token_revoke(
    email: Annotated[str, typer.Option("--email", help="Revoke every API token of this user.")],
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Revoke all API tokens of a user (for a lost laptop or a leaked token)."""
    from cape.auth.service import get_user_by_email, revoke_api_tokens

    with _work(_settings(data_dir=data_dir, database_url=database_url), migrate=False) as session:
        count = revoke_api_tokens(session, user=get_user_by_email(session, email=email))
    typer.echo(f"revoked {count} token{'s' if count != 1 else ''}")


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option("--email")],
    name: Annotated[str, typer.Option("--name")],
    role: Annotated[str, typer.Option("--role", help="agent, supervisor or admin")] = "agent",
    password: Annotated[str | None, typer.Option("--password", help="Leave out for token-only users.")] = None,
    language: Annotated[str, typer.Option("--language", help="en, fr or da")] = "en",
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Add a user (recorded in the audit log)."""
    from cape.audit.service import command_line_reason
    from cape.auth.service import create_user
    from cape.models import Role

    try:
        role_value = Role(role)
    except ValueError as exc:
        typer.echo("error: role must be agent, supervisor or admin", err=True)
        raise typer.Exit(2) from exc
    with _work(_settings(data_dir=data_dir, database_url=database_url)) as session:
        user = create_user(session, email=email, name=name, role=role_value, password=password,
                           language=language, reason=command_line_reason("users create"))  # fmt: skip
        typer.echo(f"created {user.role.value} {user.email} (id {user.id})")


@channels_app.command("add-email")
def channels_add_email(
    address: Annotated[str, typer.Option("--address", help="The address customers write to.")],
    name: Annotated[str | None, typer.Option("--name", help="Shown to agents and as the sender name.")] = None,
    imap_host: Annotated[str | None, typer.Option("--imap-host", help="Poll this IMAP server.")] = None,
    imap_port: Annotated[
        int | None, typer.Option("--imap-port", help="Default: 993 with implicit TLS, else 143.")
    ] = None,
    imap_user: Annotated[str | None, typer.Option("--imap-user")] = None,
    imap_password: Annotated[str | None, typer.Option("--imap-password")] = None,
    imap_ssl: Annotated[
        bool | None, typer.Option("--imap-ssl/--no-imap-ssl", help="Implicit TLS (the default); off: plain IMAP.")
    ] = None,
    imap_starttls: Annotated[
        bool, typer.Option("--imap-starttls", help="Plain IMAP upgraded by STARTTLS, which is then required.")
    ] = False,
    imap_ca_file: Annotated[
        str, typer.Option("--imap-ca-file", help="Trust only this CA (PEM) for the IMAP server.")
    ] = "",
    imap_folder: Annotated[str, typer.Option("--imap-folder")] = "INBOX",
    imap_processed_folder: Annotated[
        str, typer.Option("--imap-processed-folder", help="Move imported mail here (default: mark it seen).")
    ] = "",
    smtp_host: Annotated[str | None, typer.Option("--smtp-host", help="Send replies through this relay.")] = None,
    smtp_port: Annotated[int, typer.Option("--smtp-port")] = 587,
    smtp_user: Annotated[str, typer.Option("--smtp-user")] = "",
    smtp_password: Annotated[str, typer.Option("--smtp-password")] = "",
    smtp_starttls: Annotated[
        bool, typer.Option("--smtp-starttls/--no-smtp-starttls", help="STARTTLS, required (the default).")
    ] = True,
    smtp_ssl: Annotated[bool, typer.Option("--smtp-ssl/--no-smtp-ssl", help="Implicit TLS (port 465).")] = False,
    smtp_ca_file: Annotated[str, typer.Option("--smtp-ca-file", help="Trust only this CA (PEM) for the relay.")] = "",
    no_tls_verify: Annotated[
        bool,
        typer.Option("--no-tls-verify", help="Do not verify the servers' certificates (insecure; warned about)."),
    ] = False,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Add an email channel: mail for the address is taken by the SMTP listener, or polled by IMAP."""
    from cape.audit.service import command_line_reason
    from cape.channels.email.service import ImapConfig, SmtpConfig, create_email_channel, transport_warnings

    settings = _settings(data_dir=data_dir, database_url=database_url)
    imap = None
    if imap_host:
        if not imap_user or imap_password is None:
            typer.echo("error: --imap-host needs --imap-user and --imap-password", err=True)
            raise typer.Exit(2)
        if imap_starttls and imap_ssl:
            typer.echo("error: --imap-starttls and --imap-ssl exclude each other", err=True)
            raise typer.Exit(2)
        implicit = not imap_starttls and imap_ssl is not False
        imap = ImapConfig(host=imap_host, port=imap_port or (993 if implicit else 143), user=imap_user,
                          password=imap_password, ssl=implicit, starttls=imap_starttls, folder=imap_folder,
                          processed_folder=imap_processed_folder, ca_file=imap_ca_file,
                          verify_tls=not no_tls_verify)  # fmt: skip
    smtp = None
    if smtp_host:
        smtp = SmtpConfig(host=smtp_host, port=smtp_port, user=smtp_user, password=smtp_password,
                          starttls=smtp_starttls, ssl=smtp_ssl, ca_file=smtp_ca_file,
                          verify_tls=not no_tls_verify)  # fmt: skip
    with _work(settings) as session:
        channel = create_email_channel(session, address=address, name=name, imap=imap, smtp=smtp,
                                       app_secret=settings.resolved_secret_key,
                                       reason=command_line_reason("channels add-email"))  # fmt: skip
        how = f"polling {imap_host}" if imap else "receiving through the SMTP listener"
        typer.echo(f"created email channel {channel.address} (id {channel.id}), {how}")
        for warning in transport_warnings(channel, settings=settings):
            problem = "unencrypted" if warning.unencrypted else "certificate not verified"
            typer.echo(f"warning: {warning.protocol} {warning.host}:{warning.port}: {problem}", err=True)


@channels_app.command("add-chat")
def channels_add_chat(
    name: Annotated[str, typer.Option("--name", help="Shown to agents and at the top of the chat window.")],
    slug: Annotated[
        str, typer.Option("--slug", help="The channel is chat:<slug>, as the script tag names it.")
    ] = "demo",
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Add a chat widget; prints its script tag and its identity secret (shown this once)."""
    from cape.channels.chat.service import create_chat_channel

    settings = _settings(data_dir=data_dir, database_url=database_url)
    with _work(settings) as session:
        channel, secret = create_chat_channel(session, name=name, slug=slug, app_secret=settings.resolved_secret_key)
        key = channel.key
    base = f"http://{settings.host}:{settings.port}"
    typer.echo(f'added {key}\n\n  <script src="{base}/widget.js" data-channel="{key}" async></script>\n')
    typer.echo(f"identity secret (shown once, keep it on your website's server): {secret}")


@channels_app.command("list")
def channels_list(data_dir: DataDirOpt = None, database_url: DatabaseOpt = None) -> None:
    """List the email channels."""
    from cape.channels.email.service import list_email_channels, stored_servers

    with _work(_settings(data_dir=data_dir, database_url=database_url)) as session:
        for channel in list_email_channels(session):
            imap, smtp = stored_servers(channel)
            inbound = f"imap {imap.host}:{imap.port} {_protection(imap)}" if imap else "smtp listener"
            outbound = f"smtp {smtp.host}:{smtp.port} {_protection(smtp)}" if smtp else "default relay"
            default = "\tdefault outbound" if channel.is_default_outbound else ""
            typer.echo(f"{channel.id}\t{channel.address}\t{inbound}\t{outbound}{default}")


@channels_app.command("set-default-outbound")
def channels_set_default_outbound(
    address: Annotated[str, typer.Option("--address", help="An existing email channel's address.")],
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Answer conversations that came in without a mailbox (contact form, API) from this email channel."""
    from cape.audit.service import command_line_reason
    from cape.channels.email.service import set_default_outbound

    with _work(_settings(data_dir=data_dir, database_url=database_url)) as session:
        reason = command_line_reason("channels set-default-outbound")
        channel = set_default_outbound(session, address=address, reason=reason)
        typer.echo(f"default outbound mailbox: {channel.address} (id {channel.id})")


@channels_app.command("set-reply-webhook")
def channels_set_reply_webhook(
    url: Annotated[str | None, typer.Option("--url", help="Where replies in API conversations are POSTed.")] = None,
    secret: Annotated[str | None, typer.Option("--secret", help="Signing secret (default: a new one).")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Stop sending replies to the integration.")] = False,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Register the integration's webhook for agents' replies in API conversations (docs/channels.md)."""
    from cape.audit.service import command_line_reason
    from cape.channels.integrations.service import set_reply_webhook

    if remove == bool(url):
        typer.echo("error: give --url, or --remove", err=True)
        raise typer.Exit(2)
    settings = _settings(data_dir=data_dir, database_url=database_url)
    with _work(settings) as session:
        signing = set_reply_webhook(
            session, url=url, secret=secret, app_secret=settings.resolved_secret_key,
            reason=command_line_reason("channels set-reply-webhook"),
        )  # fmt: skip
    typer.echo("reply webhook removed" if remove else f"reply webhook: {url}\nsigning secret: {signing}")


def _protection(config) -> str:
    """How a mail connection is protected, for listings: tls, starttls, none; "unverified" when so."""
    return config.security.value + ("" if config.verify_tls or config.security.value == "none" else " unverified")


@channels_app.command("poll-email")
def channels_poll_email(
    address: Annotated[str | None, typer.Option("--address", help="Only this channel (default: all polled).")] = None,
    watch: Annotated[bool, typer.Option("--watch/--once", help="Keep polling (IMAP IDLE where supported).")] = False,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Import new mail from the IMAP mailboxes now (or keep doing so with --watch)."""
    from cape.channels.email.imap import poll_mailboxes, watch_mailboxes
    from cape.channels.email.service import log_insecure_transports
    from cape.logs import configure_logging

    settings = _settings(data_dir=data_dir, database_url=database_url)
    configure_logging(settings.log_level, settings.log_format)
    _migrate(settings)
    factory = _session_factory(settings)
    log_insecure_transports(factory, settings=settings)
    if watch:
        watch_mailboxes(factory, settings, address=address)
        return
    for address_polled, imported in poll_mailboxes(factory, settings, address=address):
        typer.echo(f"{address_polled}: {imported} new")


@import_app.command("orders")
def import_orders(
    file: Annotated[Path, typer.Argument(help="CSV with a header, or JSON lines (one order per line).")],
    file_format: Annotated[
        str | None, typer.Option("--format", help="csv or jsonl (default: from the extension, else the content).")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=100_000, help="Rows per commit.")] = 500,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Create or update the shop's orders from a file, by order number (run it again: nothing is duplicated).

    Rows that cannot be imported are listed at the end with their line number and reason; the exit
    status is 1 only when the file cannot be read or no row could be imported. See docs/orders.md.
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from cape.customers.imports import MAX_REPORTED, detect_format, import_orders, open_text

    if file_format not in (None, "csv", "jsonl"):
        typer.echo("error: --format must be csv or jsonl", err=True)
        raise typer.Exit(2)
    settings = _settings(data_dir=data_dir, database_url=database_url)
    try:
        binary = file.open("rb")
        size = file.stat().st_size
        kind = file_format or detect_format(file, binary.peek(64)[:64])
    except OSError as exc:
        typer.echo(f"error: cannot read {file}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from exc
    _migrate(settings)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with binary, Progress(*columns, transient=False) as progress:
        task = progress.add_task(f"orders from {file.name}", total=size or None)
        try:
            report = import_orders(
                _session_factory(settings), text=open_text(binary), kind=kind, batch_size=batch_size,
                progress=lambda: progress.update(task, completed=binary.tell()),
            )  # fmt: skip
        except (UnicodeDecodeError, OSError) as exc:
            progress.stop()
            typer.echo(f"error: cannot read {file}: {exc}", err=True)
            raise typer.Exit(1) from exc
        progress.update(task, completed=size)
    typer.echo(f"{report.rows} rows: {report.created} orders created, {report.updated} updated, "
               f"{report.rejected} rejected")  # fmt: skip
    for line, reason in report.rejections:
        typer.echo(f"line {line}: {reason}", err=True)
    if report.rejected > MAX_REPORTED:
        typer.echo(f"... and {report.rejected - MAX_REPORTED} more rejected rows", err=True)
    if report.rows and not (report.created or report.updated):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
