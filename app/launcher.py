"""Entry point of the ``dia-studio`` command.

With a subcommand (``render``, ``voices`` ...) it runs the engine's CLI and never loads Qt;
without one it starts the desktop window. ``--version`` and ``--help`` are answered here, the
help listing the subcommands and the app's own options (``--self-test``).
"""

from __future__ import annotations

import argparse
import sys

VERSION_FLAGS = ("-V", "--version")
HELP_FLAGS = ("-h", "--help")


def version() -> str:
    """``dia-studio <version>``, as ``--version`` prints it."""
    import engine

    return f"dia-studio {engine.__version__}"


def build_parser() -> argparse.ArgumentParser:
    """The engine CLI's parser with the app's top-level options, for ``--help``."""
    from engine.cli import build_parser as cli_parser

    parser = cli_parser()
    parser.add_argument("-V", "--version", action="version", version=version(), help="print the version and exit")
    parser.add_argument("--self-test", nargs="?", const="", metavar="REPORT.json",
                        help="check this install off screen (Qt, audio, PyTorch, native kernels, your data "
                             "folder, a tiny render), print a summary, write the JSON report to REPORT.json "
                             "(or print it) and exit: 0 = nothing failed")
    return parser


def opens_in_window(arg: str) -> bool:
    """``dia-studio EP.diaproj`` (or ``script.txt``): a file for the window, not a subcommand."""
    from app.main import OPENABLE_SUFFIXES

    return not arg.startswith("-") and arg.lower().endswith(OPENABLE_SUFFIXES)


def main(argv: list[str] | None = None) -> int:
    """Run ``dia-studio`` with ``argv`` (default: the command line); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    first = argv[0] if argv else ""
    if first in VERSION_FLAGS:
        print(version())
        return 0
    if first in HELP_FLAGS:
        build_parser().print_help()
        return 0
    if first and not first.startswith("--self-test") and not opens_in_window(first):
        from engine.cli import main as cli_main

        return cli_main(argv)
    from app.main import main as app_main

    return app_main(argv)


if __name__ == "__main__":
    sys.exit(main())
