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
        assert "support@example.com\tsmtp listener\tno relay" in listed.output
        again = runner.invoke(cli, ["channels", "add-email", "--address", "SUPPORT@example.com"], env=env)
        assert again.exit_code == 1 and "already exists" in again.output
        bad = runner.invoke(cli, ["channels", "add-email", "--address", "not-an-address"], env=env)
        assert bad.exit_code == 1
        half = runner.invoke(cli, ["channels", "add-email", "--address", "x@example.com", "--imap-host", "h"], env=env)
        assert half.exit_code == 2
