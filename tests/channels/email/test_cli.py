"""`cape channels add-email` and `cape channels list` on a real database."""

from __future__ import annotations

from typer.testing import CliRunner

from cape.cli import app as cli
from tests.fixtures.databases import fresh_database


def test_add_email_with_only_an_address(tmp_path):
    with fresh_database("sqlite", tmp_path) as (settings, _):
        env = {"CAPE_DATABASE_URL": settings.database_url, "CAPE_DATA_DIR": str(tmp_path),
               "CAPE_SECRET_KEY": settings.secret_key.get_secret_value()}  # fmt: skip
        runner = CliRunner()
        added = runner.invoke(cli, ["channels", "add-email", "--address", "support@example.com"], env=env)
        assert added.exit_code == 0, added.output
        assert "SMTP listener" in added.output
        listed = runner.invoke(cli, ["channels", "list"], env=env)
        assert "support@example.com\tsmtp listener\tdefault relay" in listed.output
        again = runner.invoke(cli, ["channels", "add-email", "--address", "SUPPORT@example.com"], env=env)
        assert again.exit_code == 1 and "already exists" in again.output
        bad = runner.invoke(cli, ["channels", "add-email", "--address", "not-an-address"], env=env)
        assert bad.exit_code == 1
        half = runner.invoke(cli, ["channels", "add-email", "--address", "x@example.com", "--imap-host", "h"], env=env)
        assert half.exit_code == 2


def test_set_default_outbound_and_the_reply_webhook(tmp_path):
    with fresh_database("sqlite", tmp_path) as (settings, _):
        env = {"CAPE_DATABASE_URL": settings.database_url, "CAPE_DATA_DIR": str(tmp_path),
               "CAPE_SECRET_KEY": settings.secret_key.get_secret_value()}  # fmt: skip
        runner = CliRunner()
        missing = runner.invoke(cli, ["channels", "set-default-outbound", "--address", "help@example.com"], env=env)
        assert missing.exit_code == 1 and "no active email channel" in missing.output
        runner.invoke(cli, ["channels", "add-email", "--address", "help@example.com"], env=env)
        chosen = runner.invoke(cli, ["channels", "set-default-outbound", "--address", "Help@Example.com"], env=env)
        assert chosen.exit_code == 0, chosen.output
        listed = runner.invoke(cli, ["channels", "list"], env=env)
        assert "help@example.com\tsmtp listener\tdefault relay\tdefault outbound" in listed.output

        hook = runner.invoke(cli, ["channels", "set-reply-webhook", "--url", "https://shop.example/replies"], env=env)
        assert hook.exit_code == 0 and "signing secret: " in hook.output
        bad = runner.invoke(cli, ["channels", "set-reply-webhook", "--url", "ftp://shop.example"], env=env)
        assert bad.exit_code == 1
        removed = runner.invoke(cli, ["channels", "set-reply-webhook", "--remove"], env=env)
        assert removed.exit_code == 0


def test_tls_flags(tmp_path):
    with fresh_database("sqlite", tmp_path) as (settings, _):
        env = {"CAPE_DATABASE_URL": settings.database_url, "CAPE_DATA_DIR": str(tmp_path),
               "CAPE_SECRET_KEY": settings.secret_key.get_secret_value()}  # fmt: skip
        runner = CliRunner()
        imap = ["--imap-host", "imap.example.com", "--imap-user", "u", "--imap-password", "p"]
        both = runner.invoke(cli, ["channels", "add-email", "--address", "a@example.com", *imap, "--imap-ssl",
                                   "--imap-starttls"], env=env)  # fmt: skip
        assert both.exit_code == 2 and "exclude each other" in both.output

        unverified = runner.invoke(
            cli,
            ["channels", "add-email", "--address", "b@example.com", *imap, "--imap-starttls", "--smtp-host",
             "smtp.example.com", "--no-tls-verify"],
            env=env,
        )  # fmt: skip
        assert unverified.exit_code == 0, unverified.output
        assert "warning: IMAP imap.example.com:143: certificate not verified" in unverified.output
        assert "warning: SMTP smtp.example.com:587: certificate not verified" in unverified.output

        plain = runner.invoke(cli, ["channels", "add-email", "--address", "c@example.com", *imap, "--no-imap-ssl",
                                    "--smtp-host", "smtp.example.com", "--no-smtp-starttls"], env=env)  # fmt: skip
        assert "warning: IMAP imap.example.com:143: unencrypted" in plain.output
        assert "warning: SMTP smtp.example.com:587: unencrypted" in plain.output

        listed = runner.invoke(cli, ["channels", "list"], env=env).output
        assert "b@example.com\timap imap.example.com:143 starttls unverified\tsmtp smtp.example.com:587 starttls " \
               "unverified" in listed  # fmt: skip
        assert "c@example.com\timap imap.example.com:143 none\tsmtp smtp.example.com:587 none" in listed

        ca_without_tls = runner.invoke(cli, ["channels", "add-email", "--address", "d@example.com", *imap,
                                             "--no-imap-ssl", "--imap-ca-file", "/etc/hosts"], env=env)  # fmt: skip
        assert ca_without_tls.exit_code == 1 and "only used with TLS" in ca_without_tls.output
