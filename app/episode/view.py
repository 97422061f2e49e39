"""The episode view's widgets: the script editor (episode syntax), the block list with take
switcher, A/B compare, stars and labels and block actions, the cast of any number of characters,
the render controls and the timeline of the whole episode (``app.episode.timeline``)."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence, QPalette, QTextCursor, QTextFormat
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableView,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

import engine
from app.editor import analysis
from app.editor.script_editor import ScriptEditor
from app.episode.blocks import BlockModel, take_label
from app.episode.timeline import EpisodeTimeline

RANDOM_VOICE = "Random voice (seed only)"
SHORTCUTS = {  # the episode view's keys (shown in tooltips and Help → Keyboard shortcuts)
    "next_block": "Alt+Down", "previous_block": "Alt+Up", "next_take": "Alt+Right", "previous_take": "Alt+Left",
    "regenerate": "Ctrl+R", "lock": "Ctrl+K", "play_block": "Ctrl+Shift+P",
    "render_all": "Ctrl+Shift+Return", "stop": "Ctrl+Shift+Escape", "switch_ab": "Ctrl+Shift+B",
    "star": "Ctrl+Shift+8",
}


class EpisodeEditor(ScriptEditor):
    """The script editor, checking the episode syntax ([Name], # Title, ---); Undo and Redo go
    to the project's undo stack, which holds the typing together with takes, locks and cast."""

    undoRequested = Signal()
    redoRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("episodeEditor")
        self.setAccessibleName("Episode script editor")
        self.setPlaceholderText("# Chapter title\n[Mara] A line for Mara.\n[Theo] And Theo's answer. (laughs)\n---\n"
                                "[Dr. Lee] Any number of characters; --- starts a new block.")

    def find_issues(self, text: str) -> list:
        to_qt = analysis.Utf16Offsets(text)
        return [replace(i, start=to_qt(i.start), end=to_qt(i.end)) for i in engine.check_episode(text)]

    def event(self, event) -> bool:
        if event.type() == event.Type.ShortcutOverride and isinstance(event, QKeyEvent) and \
                (event.matches(QKeySequence.StandardKey.Undo) or event.matches(QKeySequence.StandardKey.Redo)):
            event.accept()  # handled below, not by the window's Edit menu
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.matches(QKeySequence.StandardKey.Undo):
            self.undoRequested.emit()
        elif event.matches(QKeySequence.StandardKey.Redo):
            self.redoRequested.emit()
        else:
            super().keyPressEvent(event)

    def select_lines(self, first: int, last: int) -> None:
        """Select lines ``first``..``last`` (1-based, inclusive) without stealing the focus."""
        doc = self.document()
        start = doc.findBlockByNumber(max(0, first - 1))
        end = doc.findBlockByNumber(max(0, last - 1))
        if not start.isValid():
            return
        end = end if end.isValid() else doc.lastBlock()
        cursor = QTextCursor(start)
        cursor.setPosition(end.position() + end.length() - 1, QTextCursor.MoveMode.KeepAnchor)
        self.setTextCursor(cursor)
        self.ensureCursorVisible()

    def mark_lines(self, first: int, last: int) -> None:
        """Tint the lines of the block being heard (0 = none)."""
        selections = []
        if first > 0:
            doc = self.document()
            start, end = doc.findBlockByNumber(first - 1), doc.findBlockByNumber(max(first, last) - 1)
            if start.isValid():
                end = end if end.isValid() else doc.lastBlock()
                selection = QTextEdit.ExtraSelection()
                color = self.palette().color(QPalette.ColorRole.Highlight)
                color.setAlpha(45)
                selection.format.setBackground(color)
                selection.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
                cursor = QTextCursor(start)
                cursor.setPosition(end.position() + end.length() - 1, QTextCursor.MoveMode.KeepAnchor)
                selection.cursor = cursor
                selections.append(selection)
        self.playing_selections = selections
        self._highlight_current_line()

    def setExtraSelections(self, selections) -> None:  # noqa: N802 - keep the playing block's tint
        super().setExtraSelections(list(selections) + list(getattr(self, "playing_selections", [])))


class CastBox(QGroupBox):
    """One row per character: a library voice, a voice kept from a take, or a random voice."""

    voiceChosen = Signal(str, object)  # character, ("library", sample id) | ("project", voice id) | None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Cast", parent)
        self.setObjectName("episode_cast")
        layout = QVBoxLayout(self)
        self.form = QFormLayout()
        layout.addLayout(self.form)
        self.combos: dict[str, QComboBox] = {}
        self.warning = QLabel()
        self.warning.setObjectName("episode_cast_warning")
        self.warning.setWordWrap(True)
        layout.addWidget(self.warning)
        layout.addStretch(1)
        self.library_voices: list = []
        self._shown: tuple | None = None

    def set_library(self, samples: list) -> None:
        self.library_voices = list(samples)

    def set_cast(self, cast: dict, project_voices: list) -> None:
        """Rebuild the rows for ``cast`` (character -> ProjectVoice or None)."""
        shown = (tuple((c, v.id if v else None) for c, v in cast.items()), tuple(v.id for v in project_voices),
                 tuple(s.id for s in self.library_voices))
        if shown == self._shown:
            return
        self._shown = shown
        while self.form.rowCount():
            self.form.removeRow(0)
        self.combos = {}
        for character, voice in cast.items():
            combo = QComboBox()
            combo.setObjectName(f"cast_{character}")
            combo.setAccessibleName(f"Voice of {character}")
            combo.addItem(RANDOM_VOICE, None)
            for sample in self.library_voices:
                combo.addItem(f"Library: {sample.speaker_name}", ("library", sample.id))
            for pv in project_voices:
                if pv.source == "take":
                    combo.addItem(f"From a take: {pv.name}", ("project", pv.id))
            combo.setCurrentIndex(_current(combo, voice, self.library_voices))
            combo.activated.connect(lambda _i, c=character, box=combo: self.voiceChosen.emit(c, box.currentData()))
            self.combos[character] = combo
            self.form.addRow(character, combo)
        seed_only = [c for c, v in cast.items() if v is None]
        self.warning.setText(("⚠ Seed only, so the voice will drift from block to block: " + ", ".join(seed_only)
                              + ". Choose a library voice, or “Keep this voice” on a good take.") if seed_only else "")
        self.warning.setVisible(bool(seed_only))


def _current(combo: QComboBox, voice, library_voices: list) -> int:
    if voice is None:
        return 0
    if voice.source == "take":
        wanted = ("project", voice.id)
    else:
        sample = next((s for s in library_voices if s.uid and s.uid == voice.library_uid), None)
        wanted = ("library", sample.id) if sample is not None else None
    for i in range(combo.count()):
        if combo.itemData(i) == wanted:
            return i
    combo.addItem(f"Project: {voice.name}", ("kept", voice.id))
    return combo.count() - 1


def _button(text: str, name: str, tip: str = "") -> QPushButton:
    button = QPushButton(text)
    button.setObjectName(name)
    button.setAccessibleName(text.strip("‹› "))
    if tip:
        button.setToolTip(tip)
    return button


class EpisodeView(QWidget):
    """Editor on the left; blocks, block actions and cast on the right; render bar above; overview below."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("episode_view")
        self.editor = EpisodeEditor()
        self.issues_label = QLabel("Script OK")
        self.issues_label.setObjectName("episode_issues")

        self.name_label = QLabel()
        self.name_label.setObjectName("episode_name")
        self.render_all = _button("Render all", "episode_render_all",
                                  f"Render every block without a take ({SHORTCUTS['render_all']})")
        self.render_changed = _button("Render changed", "episode_render_changed",
                                      "Render only the blocks changed since their render")
        self.stop_button = _button("Stop", "episode_stop", f"Stop rendering; finished blocks are kept "
                                                           f"({SHORTCUTS['stop']})")
        self.play_episode = _button("▶ Play episode", "episode_play", "Play from the selected block on")
        self.export_button = _button("Export…", "episode_export", "Export the episode with chapters and captions")
        self.resume_button = _button("Resume render", "episode_resume",
                                     "A render was interrupted: render the blocks that are left")
        self.resume_button.hide()
        self.progress = QProgressBar()
        self.progress.setObjectName("episode_progress")
        self.progress.setAccessibleName("Episode render progress")
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setMaximumWidth(220)
        self.progress.hide()
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.name_label, 1)
        for w in (self.progress, self.resume_button, self.render_all, self.render_changed, self.stop_button,
                  self.play_episode, self.export_button):
            top.addWidget(w)

        self.model = BlockModel(lambda _identity: None, self)
        self.table = QTableView()
        self.table.setObjectName("episode_blocks")
        self.table.setAccessibleName("Blocks")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)

        self.previous_take = _button("‹", "episode_previous_take", f"Previous take ({SHORTCUTS['previous_take']})")
        self.previous_take.setAccessibleName("Previous take")
        self.take_label = QLabel("—")
        self.take_label.setObjectName("episode_take_label")
        self.next_take = _button("›", "episode_next_take", f"Next take ({SHORTCUTS['next_take']})")
        self.next_take.setAccessibleName("Next take")
        self.regenerate = _button("Regenerate", "episode_regenerate",
                                  f"Render this block again with a new seed ({SHORTCUTS['regenerate']})")
        self.lock = _button("Lock", "episode_lock", f"Keep this take; renders leave the block alone "
                                                    f"({SHORTCUTS['lock']})")
        self.lock.setCheckable(True)
        self.play_block = _button("▶ Block", "episode_play_block", f"Play this block ({SHORTCUTS['play_block']})")
        self.play_block.setAccessibleName("Play block")
        self.keep_voice = QComboBox()
        self.keep_voice.setObjectName("episode_keep_voice")
        self.keep_voice.setAccessibleName("Keep this voice")
        self.keep_voice.setToolTip("Cut a character's voice from this take into the project, so every block of "
                                   "theirs sounds like it (needs faster-whisper)")
        row = QHBoxLayout()
        for w in (self.previous_take, self.take_label, self.next_take, self.regenerate, self.lock, self.play_block):
            row.addWidget(w)
        row.addStretch(1)
        self.star = _button("☆", "episode_star", f"Star this take ({SHORTCUTS['star']})")
        self.star.setCheckable(True)
        self.star.setAccessibleName("Star this take")
        self.star.setMaximumWidth(40)
        self.take_name = QLineEdit()
        self.take_name.setObjectName("episode_take_name")
        self.take_name.setAccessibleName("Label of this take")
        self.take_name.setPlaceholderText("Label this take…")
        self.take_name.setToolTip("Your note on this take (Enter keeps it); kept in the project file")
        self.compare = QComboBox()
        self.compare.setObjectName("episode_compare")
        self.compare.setAccessibleName("Take B to compare with")
        self.compare.setToolTip("The take to compare the chosen one (A) with")
        self.switch_ab = _button("A ⇄ B", "episode_switch_ab",
                                 f"Play take A; press again to hear B from the same moment ({SHORTCUTS['switch_ab']})")
        self.switch_ab.setAccessibleName("Switch between take A and take B")
        self.hearing = QLabel()
        self.hearing.setObjectName("episode_hearing")
        marks = QHBoxLayout()
        marks.addWidget(self.star)
        marks.addWidget(self.take_name, 1)
        compare = QHBoxLayout()
        compare.addWidget(QLabel("Compare A with"))
        compare.addWidget(self.compare, 1)
        compare.addWidget(self.switch_ab)
        compare.addWidget(self.hearing)
        row2 = QHBoxLayout()
        row2.addWidget(QLabel("Keep this voice:"))
        row2.addWidget(self.keep_voice, 1)

        self.cast = CastBox()
        cast_scroll = QScrollArea()
        cast_scroll.setWidget(self.cast)
        cast_scroll.setWidgetResizable(True)

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.table, 3)
        right_layout.addLayout(row)
        right_layout.addLayout(marks)
        right_layout.addLayout(compare)
        right_layout.addLayout(row2)
        right_layout.addWidget(cast_scroll, 2)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.editor, 1)
        left_layout.addWidget(self.issues_label)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("episode_splitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)

        self.timeline = EpisodeTimeline()
        self.overview = self.timeline.canvas
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.timeline)

        self.actions_by_name: dict[str, QAction] = {}
        for name, text in (("next_block", "Next block"), ("previous_block", "Previous block"),
                           ("next_take", "Next take"), ("previous_take", "Previous take"),
                           ("regenerate", "Regenerate block"), ("lock", "Lock / unlock block"),
                           ("play_block", "Play block"), ("render_all", "Render all blocks"),
                           ("stop", "Stop rendering the episode"), ("switch_ab", "Switch between takes A and B"),
                           ("star", "Star / unstar the take")):
            action = QAction(text, self)
            action.setObjectName(f"episode_action_{name}")
            action.setShortcut(QKeySequence(SHORTCUTS[name]))
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.addAction(action)
            self.actions_by_name[name] = action
        self.editor.issuesChanged.connect(self._show_issues)

    def _show_issues(self, issues: list) -> None:
        self.issues_label.setText(analysis.summary(issues))

    def selected_block(self) -> int:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else -1

    def select_block(self, index: int) -> None:
        if 0 <= index < self.model.rowCount() and index != self.selected_block():
            self.table.selectRow(index)
            self.table.scrollTo(self.model.index(index, 0))

    def show_block_actions(self, block) -> None:
        """Enable and label the take switcher and block buttons for ``block`` (None: nothing selected)."""
        has = block is not None
        takes = len(block.takes) if has else 0
        self.take_label.setText(take_label(block) if has else "—")
        self.take_label.setAccessibleName(f"Take {self.take_label.text()}")
        for button in (self.previous_take, self.next_take):
            button.setEnabled(has and takes > 1 and not block.locked)
        self.regenerate.setEnabled(has and not block.locked)
        self.lock.setEnabled(has and block.chosen is not None)
        self.lock.setChecked(has and block.locked)
        self.lock.setText("Unlock" if has and block.locked else "Lock")
        self.play_block.setEnabled(has and block.chosen is not None and not block.needs_render)
        self._show_take_marks(block)
        self.keep_voice.clear()
        self.keep_voice.addItem("—", None)
        if has and block.chosen is not None:
            for character in block.characters:
                self.keep_voice.addItem(character, character)
        self.keep_voice.setEnabled(self.keep_voice.count() > 1)

    def _show_take_marks(self, block) -> None:
        """The chosen take's star and label; the other takes to compare it with."""
        take = next((t for t in block.takes if t.id == block.chosen), None) if block is not None else None
        self.star.setEnabled(take is not None)
        self.star.setChecked(take is not None and take.starred)
        self.star.setText("★" if take is not None and take.starred else "☆")
        self.take_name.setEnabled(take is not None)
        if not self.take_name.hasFocus():
            self.take_name.setText(take.label if take is not None else "")
        self.compare.clear()
        if take is not None:
            for number, other in enumerate(block.takes, start=1):
                if other.id != take.id:
                    self.compare.addItem(take_title(number, other), other.id)
        self.compare.setEnabled(self.compare.count() > 0)
        self.switch_ab.setEnabled(self.compare.count() > 0)


def take_title(number: int, take) -> str:
    """“Take 2 ★ warmer” for a menu."""
    return " ".join(part for part in (f"Take {number}", "★" if take.starred else "", take.label) if part)
