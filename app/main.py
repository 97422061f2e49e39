"""Starting the desktop app: QApplication, logging to a file in the data folder, settings, theme,
the main window, and a last-resort handler that shows unexpected errors as messages.

``dia-studio`` (no subcommand) and ``python -m app`` call ``main`` (through ``app.launcher``).
``--self-test[=report.json]`` builds the window off screen, checks resources, Qt, torch, soundfile,
PortAudio, the native kernels and the data folders, renders with a tiny model, writes a JSON report
and exits 0 unless a check failed (packaged builds, CI); see ``app.self_test``.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import traceback
from pathlib import Path

from engine.files import PRIVATE_FILE_MODE, ensure_private_dir, make_private

log = logging.getLogger("app")

LOG_NAME = "dia-studio.log"
LOG_MAX_BYTES = 2_000_000
LOG_BACKUPS = 3
SELF_TEST = "--self-test"


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file created with mode 0600: it names the user's files, voices and scripts."""

    def _open(self):
        os.close(os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE))
        make_private(self.baseFilename)  # a log an earlier version left readable
        return super()._open()


def setup_logging() -> Path | None:
    """Log to ``<data dir>/logs/dia-studio.log`` (private; rotated at 2 MB, 3 backups)."""
    import engine
    from app import errors

    try:
        folder = ensure_private_dir(engine.data_dir() / "logs")
        path = folder / LOG_NAME
        handler = PrivateRotatingFileHandler(path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
    except OSError as exc:  # a read-only data folder must not stop the app
        print(f"Dia Studio: can't write the log file: {exc}", file=sys.stderr)
        return None
    for backup in folder.glob(f"{LOG_NAME}.*"):
        make_private(backup)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    errors.LOG_FILE_HINT["path"] = str(path)
    return path


def install_excepthook() -> None:
    """Unexpected exceptions in slots are logged and shown as a message instead of killing the app."""

    def hook(kind, value, tb) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, value, tb)
            return
        log.error("unhandled exception:\n%s", "".join(traceback.format_exception(kind, value, tb)))
        try:
            from PySide6.QtWidgets import QApplication, QMessageBox

            from app.errors import describe

            if QApplication.instance() is not None:
                error = describe(value)
                QMessageBox.warning(QApplication.activeWindow(), error.title, error.text)
        except Exception:  # noqa: BLE001 - never raise from the hook
            pass

    sys.excepthook = hook


def create_application(argv: list[str]):
    from PySide6.QtCore import QSettings
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    import resources
    from app.settings import APPLICATION, ORGANIZATION

    QApplication.setOrganizationName(ORGANIZATION)
    QApplication.setApplicationName(APPLICATION)
    QApplication.setApplicationDisplayName(APPLICATION)
    QApplication.setDesktopFileName("dia-studio")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    app = QApplication.instance() or QApplication(["dia-studio", *argv])
    app.setWindowIcon(QIcon(str(resources.path("icons", "dia-studio.svg"))))
    return app


def self_test_request(argv: list[str]) -> tuple[bool, str | None, list[str]]:
    """Whether ``argv`` asks for the self-test, its report path (``--self-test=PATH`` or
    ``--self-test PATH``; None = print it) and the remaining arguments (for Qt)."""
    rest: list[str] = []
    wanted, report = False, None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == SELF_TEST:
            wanted = True
            if i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                report, i = argv[i + 1], i + 1
        elif arg.startswith(SELF_TEST + "="):
            wanted, report = True, arg.partition("=")[2] or None
        else:
            rest.append(arg)
        i += 1
    return wanted, report, rest


OPENABLE_SUFFIXES = (".diaproj", ".txt", ".dia")


def files_to_open(args: list[str]) -> list[str]:
    """The episode projects and scripts named on the command line (Qt's own options are left alone)."""
    return [a for a in args if not a.startswith("-") and a.lower().endswith(OPENABLE_SUFFIXES)]


def main(argv: list[str] | None = None) -> int:
    """Start the window (or, with ``--self-test``, check the install); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    self_test, report, qt_args = self_test_request(argv)
    if self_test:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        return run_self_test(report)
    log_path = setup_logging()
    log.info("Dia Studio starting (log: %s)", log_path)
    app = create_application(qt_args)
    install_excepthook()

    from app import settings as opts
    from app.main_window import MainWindow
    from app.services import create_services
    from app.settings import Settings
    from app.theme import apply_theme

    settings = Settings()
    apply_theme(app, settings.get(opts.THEME))
    window = MainWindow(settings, create_services())  # the window stops and closes them on shutdown
    window.show()
    for path in files_to_open(qt_args):  # `dia-studio EP.diaproj` or a script, from a terminal or a file manager
        window.episode.open_any(path)
    code = app.exec()
    window.shutdown()
    log.info("Dia Studio closed")
    return code


def run_self_test(report_path: str | None) -> int:
    """Build everything off screen and report what works (exit 0 = no check failed); see ``app.self_test``."""
    from app.self_test import run

    return run(report_path)
