"""History and Queue as dock widgets: resizable, movable, floatable, tabbed together at the bottom
by default; the window remembers where they were (``QMainWindow.saveState``)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QWidget

FEATURES = (QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable)
DEFAULT_HEIGHT = 260  # px: about eight rows of the history on a first start


class PanelDocks(QObject):
    """The docks of ``panels`` (title -> widget) in ``window``, tabbed together; offers a tab
    widget's ``currentIndex``/``setCurrentIndex``/``currentWidget``/``setCurrentWidget``."""

    def __init__(self, window: QMainWindow, panels: dict[str, QWidget]) -> None:
        super().__init__(window)
        self.window = window
        self.docks: list[QDockWidget] = []
        self._current = 0
        for title, panel in panels.items():
            dock = QDockWidget(title, window)
            dock.setObjectName(f"dock_{title.lower()}")
            dock.setAccessibleName(f"{title} panel")
            dock.setFeatures(FEATURES)
            dock.setAllowedAreas(Qt.DockWidgetArea.AllDockWidgetAreas)
            dock.setWidget(panel)
            window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
            if self.docks:
                window.tabifyDockWidget(self.docks[0], dock)
            dock.visibilityChanged.connect(lambda shown, i=len(self.docks): self._shown(i, shown))
            self.docks.append(dock)
        window.resizeDocks(self.docks[:1], [DEFAULT_HEIGHT], Qt.Orientation.Vertical)
        self.setCurrentIndex(0)

    def _shown(self, index: int, shown: bool) -> None:
        if shown:
            self._current = index

    def count(self) -> int:
        return len(self.docks)

    def currentIndex(self) -> int:  # noqa: N802 - as QTabWidget names it
        return self._current

    def currentWidget(self) -> QWidget:  # noqa: N802
        return self.docks[self._current].widget()

    def setCurrentIndex(self, index: int) -> None:  # noqa: N802
        """Show that panel's dock (again, if it was closed) and bring its tab to the front."""
        dock = self.docks[index]
        dock.show()
        dock.raise_()
        self._current = index

    def raise_tab(self, index: int) -> None:
        """Bring that panel's tab to the front, unless the user closed its dock."""
        if not self.docks[index].isHidden():
            self.docks[index].raise_()
            self._current = index

    def setCurrentWidget(self, widget: QWidget) -> None:  # noqa: N802
        for index, dock in enumerate(self.docks):
            if dock.widget() is widget:
                self.setCurrentIndex(index)

    def toggle_actions(self) -> list:
        """View-menu actions that show or hide each dock."""
        return [dock.toggleViewAction() for dock in self.docks]
