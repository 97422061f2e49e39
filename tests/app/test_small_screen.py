"""The main window on a 1366×768 laptop screen, in a real process whose (offscreen) screen has that size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, sys
from pathlib import Path
from PySide6.QtCore import QPoint, QRect, QSettings
from PySide6.QtWidgets import QApplication

app = QApplication([])
from app.settings import Settings
from app.main_window import MainWindow

out = Path(sys.argv[1])
window = MainWindow(Settings(QSettings(sys.argv[2], QSettings.Format.IniFormat)))
window.show()
for _ in range(30):
    app.processEvents()
window.statusBar().showMessage("A status message long enough to need most of the status line, to see it whole.")
app.processEvents()


def on_window(widget):
    # the widget's rectangle in window coordinates, cut to what its scroll area (if any) shows
    rect = QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())
    viewport = window.editor_splitter.widget(1).viewport()
    if viewport.isAncestorOf(widget):
        rect = rect.intersected(QRect(viewport.mapTo(window, QPoint(0, 0)), viewport.size()))
    return [rect.x(), rect.y(), rect.width(), rect.height(), widget.isVisible()]


params = window.params_panel
report = {
    "available": list(window.screen().availableGeometry().getRect()),
    "frame": list(window.frameGeometry().getRect()),
    "client": [window.width(), window.height()],
    "widgets": {
        "max_audio_length": on_window(params.controls["max_new_tokens"].spin),
        "seed": on_window(params.seed.edit),
        "reset": on_window(params.reset),
        "history_table": on_window(window.history_panel.table),
        "status_bar": on_window(window.statusBar()),
        "render_button": on_window(window.render_button),
    },
    "sizes": {
        "max_audio_length": [params.controls["max_new_tokens"].spin.width(), params.controls["max_new_tokens"].spin.height()],
        "seed": [params.seed.edit.width(), params.seed.edit.height()],
        "reset": [params.reset.width(), params.reset.height()],
        "history_table": [window.history_panel.table.width(), window.history_panel.table.height()],
        "status_bar": [window.statusBar().width(), window.statusBar().height()],
        "render_button": [window.render_button.width(), window.render_button.height()],
    },
    "row_height": window.history_panel.table.verticalHeader().defaultSectionSize(),
    "header_height": window.history_panel.table.horizontalHeader().height(),
}
window.grab().save(str(out / "main-window-1366x768.png"))
window.shutdown()
print(json.dumps(report))
"""


def test_the_window_fits_a_1366x768_screen_and_shows_every_parameter(tmp_path, test_output_dir):
    config = tmp_path / "screen.json"
    config.write_text(json.dumps({"screens": [{"name": "laptop", "x": 0, "y": 0, "width": 1366, "height": 768,
                                               "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}))
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={config}",
           "DIA_STUDIO_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", PROBE, str(test_output_dir), str(tmp_path / "settings.ini")],
                          check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    ax, ay, aw, ah = report["available"]
    fx, fy, fw, fh = report["frame"]
    assert (aw, ah) == (1366, 768)
    assert ax <= fx and ay <= fy and fx + fw <= ax + aw and fy + fh <= ay + ah  # the whole window is on screen
    cw, ch = report["client"]
    for name, (x, y, w, h, visible) in report["widgets"].items():
        full_w, full_h = report["sizes"][name]
        assert visible, name
        # shown whole: inside the window and not cut by the side panel's scroll area
        assert x >= 0 and y >= 0 and x + w <= cw and y + h <= ch, name
        assert (w, h) == (full_w, full_h), name
    # the history shows at least a couple of rows
    assert report["sizes"]["history_table"][1] >= report["header_height"] + 2 * report["row_height"]
    assert (test_output_dir / "main-window-1366x768.png").stat().st_size > 10_000
