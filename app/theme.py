"""Light and dark palettes (Fusion style) and the colours the editor and waveform derive from them."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

THEMES = ("system", "light", "dark")


def dark_palette() -> QPalette:
    p = QPalette()
    window, base, text = QColor(45, 47, 51), QColor(30, 31, 34), QColor(225, 227, 230)
    disabled = QColor(125, 128, 133)
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        p.setColor(group, QPalette.ColorRole.Window, window)
        p.setColor(group, QPalette.ColorRole.WindowText, text)
        p.setColor(group, QPalette.ColorRole.Base, base)
        p.setColor(group, QPalette.ColorRole.AlternateBase, QColor(38, 40, 44))
        p.setColor(group, QPalette.ColorRole.ToolTipBase, QColor(60, 63, 68))
        p.setColor(group, QPalette.ColorRole.ToolTipText, text)
        p.setColor(group, QPalette.ColorRole.PlaceholderText, QColor(140, 143, 148))
        p.setColor(group, QPalette.ColorRole.Text, text)
        p.setColor(group, QPalette.ColorRole.Button, QColor(55, 58, 63))
        p.setColor(group, QPalette.ColorRole.ButtonText, text)
        p.setColor(group, QPalette.ColorRole.BrightText, QColor(255, 110, 110))
        p.setColor(group, QPalette.ColorRole.Link, QColor(110, 170, 255))
        p.setColor(group, QPalette.ColorRole.Highlight, QColor(66, 120, 200))
        p.setColor(group, QPalette.ColorRole.HighlightedText, QColor(255, 255, 255))
        p.setColor(group, QPalette.ColorRole.Light, QColor(75, 78, 84))
        p.setColor(group, QPalette.ColorRole.Midlight, QColor(62, 65, 70))
        p.setColor(group, QPalette.ColorRole.Mid, QColor(40, 42, 46))
        p.setColor(group, QPalette.ColorRole.Dark, QColor(25, 26, 28))
        p.setColor(group, QPalette.ColorRole.Shadow, QColor(10, 10, 10))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Base, QColor(38, 40, 44))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Button, QColor(50, 52, 56))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Window, window)
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Highlight, QColor(80, 84, 90))
    return p


def light_palette() -> QPalette:
    style = QStyleFactory.create("Fusion")
    return style.standardPalette() if style is not None else QPalette()


def system_prefers_dark() -> bool:
    hints = QGuiApplication.styleHints()
    scheme = getattr(hints, "colorScheme", None)
    return scheme is not None and scheme() == Qt.ColorScheme.Dark


def apply_theme(app: QApplication, theme: str) -> str:
    """Switch the app to ``theme`` (system | light | dark); returns the palette actually used."""
    app.setStyle("Fusion")
    resolved = theme if theme in ("light", "dark") else ("dark" if system_prefers_dark() else "light")
    app.setPalette(dark_palette() if resolved == "dark" else light_palette())
    app.setProperty("dia_theme", resolved)
    return resolved


def is_dark(palette: QPalette | None = None) -> bool:
    palette = palette or QApplication.palette()
    return palette.color(QPalette.ColorRole.Base).lightness() < 128


@dataclass(frozen=True)
class EditorColors:
    s1: QColor
    s2: QColor
    cue: QColor
    unknown_cue: QColor
    error: QColor
    warning: QColor
    line_numbers: QColor
    line_numbers_bg: QColor
    current_line: QColor


def editor_colors(palette: QPalette | None = None) -> EditorColors:
    """Colours with enough contrast on the palette's base colour."""
    palette = palette or QApplication.palette()
    if is_dark(palette):
        return EditorColors(s1=QColor(110, 170, 255), s2=QColor(240, 150, 90), cue=QColor(120, 210, 140),
                            unknown_cue=QColor(230, 190, 90), error=QColor(255, 95, 95),
                            warning=QColor(230, 190, 60), line_numbers=QColor(130, 134, 140),
                            line_numbers_bg=QColor(36, 37, 41), current_line=QColor(40, 44, 52))
    return EditorColors(s1=QColor(20, 90, 200), s2=QColor(190, 80, 0), cue=QColor(20, 130, 60),
                        unknown_cue=QColor(150, 110, 0), error=QColor(210, 30, 30),
                        warning=QColor(200, 140, 0), line_numbers=QColor(120, 120, 120),
                        line_numbers_bg=QColor(240, 240, 240), current_line=QColor(245, 248, 255))


def waveform_colors(palette: QPalette | None = None) -> tuple[QColor, QColor, QColor, QColor]:
    """(background, played wave, unplayed wave, playhead)."""
    palette = palette or QApplication.palette()
    base = palette.color(QPalette.ColorRole.Base)
    highlight = palette.color(QPalette.ColorRole.Highlight)
    text = palette.color(QPalette.ColorRole.Text)
    unplayed = QColor(text)
    unplayed.setAlpha(110)
    head = QColor(255, 90, 90) if is_dark(palette) else QColor(200, 30, 30)
    return base, highlight, unplayed, head
