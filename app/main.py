"""Starting the desktop app: QApplication, logging to a file in the data folder, settings, theme,
the main window, and a last-resort handler that shows unexpected errors as messages.

``dia-studio`` (no subcommand) and ``python -m app`` call ``main``. ``--self-test[=report.json]``
builds the window off screen, checks resources, Qt, torch, soundfile, PortAudio and the data folder,
renders with a tiny model, writes a JSON report and exits 0 when everything passed (packaged builds, CI).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import traceback
from pathlib import Path

log = logging.getLogger("app")

LOG_NAME = "dia-studio.log"


def setup_logging() -> Path | None:
    """Log to ``<data dir>/logs/dia-studio.log`` (rotated at 2 MB, 3 backups)."""
    import engine
    from app import errors

    try:
        folder = engine.data_dir() / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / LOG_NAME
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    except OSError as exc:  # a read-only data folder must not stop the app
        print(f"Dia Studio: can't write the log file: {exc}", file=sys.stderr)
        return None
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    self_test = next((a for a in argv if a.startswith("--self-test")), None)
    if self_test is not None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        return run_self_test(self_test.partition("=")[2] or None)
    log_path = setup_logging()
    log.info("Dia Studio starting (log: %s)", log_path)
    app = create_application([a for a in argv if not a.startswith("--self-test")])
    install_excepthook()

    from app import settings as opts
    from app.main_window import MainWindow
    from app.settings import Settings
    from app.theme import apply_theme

    settings = Settings()
    apply_theme(app, settings.get(opts.THEME))
    window = MainWindow(settings)
    window.show()
    code = app.exec()
    window.shutdown()
    log.info("Dia Studio closed")
    return code


def run_self_test(report_path: str | None) -> int:
    """Build everything off screen and report what works (exit 0 = all checks passed); see ``app.self_test``."""
    from app.self_test import run

    return run(report_path)
