"""``python -m cape``: the same command line as ``cape``."""

from cape.cli import app

if __name__ == "__main__":
    app(prog_name="cape")
