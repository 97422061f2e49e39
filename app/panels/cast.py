"""The cast: which library voice (or a random voice) speaks [S1] and [S2].

A server's voice library (``app.remote.RemoteLibrary``) is listed in the background, so a slow or
silent server never freezes the window: meanwhile the pickers say so and keep the choices to restore.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import QComboBox, QGridLayout, QLabel, QPushButton, QWidget
from shiboken6 import isValid

import engine
from app import settings as opts
from app.editor.script_panel import PromptCost
from app.errors import describe
from app.remote import RemoteLibrary
from app.settings import Settings
from app.tasks import TaskRunner
from app.theme import editor_colors

log = logging.getLogger(__name__)

RANDOM = -1
NOT_CHOSEN = -2
GAP_SECONDS = 0.4  # silence between the two clips of a prompt (engine.voice_prompt)
LOADING = "Loading voices from the server…"


class CastPanel(QWidget):
    """Two voice pickers; warns about samples without a transcript."""

    castChanged = Signal(object)  # {"S1": id | None, "S2": id | None} (object: never a QVariantMap of None)
    promptCostChanged = Signal(object)  # PromptCost
    manageRequested = Signal()
    voicesListed = Signal()  # a listing arrived (or failed): ``samples`` holds the library's voices

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.library: engine.VoiceLibrary | None = None
        self.tasks: TaskRunner | None = None  # where a server's library is listed
        self.samples: dict[int, engine.VoiceSample] = {}
        self.loading = False  # a server's listing is on its way
        self._listing = 0  # the newest listing asked for: an older answer is dropped
        self._wanted: dict[str, int | None] | None = None  # the choices to restore when it arrives
        self.combos: dict[str, QComboBox] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        for row, tag in enumerate(("S1", "S2")):
            combo = QComboBox()
            combo.setObjectName(f"cast_{tag.lower()}")
            combo.setAccessibleName(f"Voice for {tag}")
            combo.setToolTip(f"The voice that speaks the [{tag}] lines: a sample from your voice library "
                             "(cloned) or a random voice")
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(12)
            label = QLabel(f"[{tag}]")
            label.setBuddy(combo)
            label.setToolTip(combo.toolTip())
            grid.addWidget(label, row, 0)
            grid.addWidget(combo, row, 1)
            combo.currentIndexChanged.connect(lambda _i, t=tag: self._changed(tag=t))
            self.combos[tag] = combo
        self.manage = QPushButton("Voice library…")
        self.manage.setObjectName("open_library")
        self.manage.setToolTip("Add, record and edit voice samples (Ctrl+L)")
        self.manage.clicked.connect(self.manageRequested)
        grid.addWidget(self.manage, 1, 2)  # beside [S2]: a row less, so small screens show all parameters
        self.warning = QLabel()
        self.warning.setObjectName("cast_warning")
        self.warning.setWordWrap(True)
        self.warning.hide()
        grid.addWidget(self.warning, 2, 0, 1, 3)
        grid.setColumnStretch(1, 1)

    # -- content

    def set_library(self, library: engine.VoiceLibrary | None, message: str = "",
                    tasks: TaskRunner | None = None) -> None:
        """Show ``library``'s voices (a server's are listed on ``tasks``, in the background)."""
        self.library = library
        self.tasks = tasks or self.tasks
        self.refresh(message)

    def refresh(self, message: str = "") -> None:
        """Reload the voices, keeping the current choices where the voices still exist."""
        if self.loading:
            previous = self._wanted
        else:
            previous = self.cast() if self.samples or self._has_items() else None
        self._listing += 1
        listing, library = self._listing, self.library
        if library is None or self.tasks is None or not isinstance(library, RemoteLibrary):
            try:
                voices = library.list() if library is not None else []
            except engine.DiaStudioError as exc:
                voices, message = [], exc.message
            self._show(voices, previous, message)
            return
        self._show_loading(previous)

        def current() -> bool:
            return listing == self._listing and isValid(self.warning)  # else: switched again, or closed

        def arrived(voices: list) -> None:
            if current():
                self._show(voices, self._wanted, message)

        def failed(exc: BaseException) -> None:
            if current():
                self._show([], self._wanted, describe(exc).message)

        self.tasks.run(library.list, arrived, failed)

    def shutdown(self) -> None:
        """The window is closing: an answer still on its way changes nothing."""
        self._listing += 1

    def _show_loading(self, previous: dict[str, int | None] | None) -> None:
        self.loading, self._wanted, self.samples = True, previous, {}
        for combo in self.combos.values():
            with QSignalBlocker(combo):
                combo.clear()
                combo.addItem(LOADING, RANDOM)
            combo.setEnabled(False)
        self._changed(store=False)  # the warning says the voices are loading

    def _show(self, voices: list[engine.VoiceSample], previous: dict[str, int | None] | None, message: str) -> None:
        """Fill the pickers with ``voices``, choosing ``previous`` (None: the stored choices) again."""
        self.loading, self._wanted = False, None
        self.samples = {v.id: v for v in voices}
        for combo in self.combos.values():
            with QSignalBlocker(combo):
                combo.clear()
                combo.addItem("Random voice", RANDOM)
                combo.setItemData(0, "Dia invents a voice (fix the seed to keep it)", Qt.ItemDataRole.ToolTipRole)
                for voice in voices:
                    mark = " ★" if voice.is_default else ""
                    note = "" if voice.has_transcript else " — no transcript"
                    combo.addItem(f"{voice.speaker_name}{mark} ({voice.duration:.1f} s){note}", voice.id)
                    combo.setItemData(combo.count() - 1, voice.transcript or "No transcript yet",
                                      Qt.ItemDataRole.ToolTipRole)
            combo.setEnabled(True)
        if previous is None:
            previous = self._stored_choices()
        elif self.settings.get(opts.CAST_S1) == NOT_CHOSEN:
            previous["S1"] = self._stored_choices()["S1"]  # not chosen by hand: S1 follows the library's default
        self.set_cast(previous, store=False)
        if message:
            self.warning.setText(message)
            self.warning.show()
        self.voicesListed.emit()

    def _has_items(self) -> bool:
        return self.combos["S1"].count() > 0

    def _stored_choices(self) -> dict[str, int | None]:
        choices: dict[str, int | None] = {}
        default = next((v for v in self.samples.values() if v.is_default), None)
        for tag, option in (("S1", opts.CAST_S1), ("S2", opts.CAST_S2)):
            stored = self.settings.get(option)
            if stored == NOT_CHOSEN:
                # first run: the library's default sample speaks S1
                choices[tag] = default.id if (default is not None and tag == "S1") else None
            else:
                choices[tag] = stored if stored >= 0 else None
        return choices

    def cast(self) -> dict[str, int | None]:
        if self.loading:  # the choices wait in ``_wanted`` until the voices are listed
            return dict(self._wanted) if self._wanted is not None else self._stored_choices()
        result: dict[str, int | None] = {}
        for tag, combo in self.combos.items():
            value = combo.currentData() if combo.count() else RANDOM  # every item has int data
            result[tag] = int(value) if int(value) >= 0 else None
        return result

    def set_cast(self, cast: dict[str, int | None], *, store: bool = True) -> None:
        if self.loading:
            self._wanted = {tag: cast.get(tag) for tag in self.combos}
        for tag, combo in self.combos.items():
            wanted = cast.get(tag)
            index = combo.findData(wanted if wanted is not None else RANDOM)
            with QSignalBlocker(combo):
                combo.setCurrentIndex(index if index >= 0 else 0)
        self._changed(store=store)

    def prompt_cost(self) -> PromptCost:
        chosen = [self.samples[vid] for vid in self.cast().values() if vid is not None and vid in self.samples]
        if not chosen:
            return PromptCost()
        seconds = sum(s.duration for s in chosen) + GAP_SECONDS * (len(chosen) - 1)
        lines = "\n".join(f"[S{i + 1}] {s.transcript}" for i, s in enumerate(chosen))
        return PromptCost(seconds, engine.text_token_count(lines + "\n"))

    def _changed(self, *_args, store: bool = True, tag: str | None = None) -> None:
        """Report the cast; ``store`` remembers the choice of ``tag`` (both when None) as the user's own."""
        cast = self.cast()
        if store:
            for t, option in (("S1", opts.CAST_S1), ("S2", opts.CAST_S2)):
                if tag in (None, t):
                    self.settings.set(option, cast[t] if cast[t] is not None else RANDOM)
        self._update_warning(cast)
        self.castChanged.emit(cast)
        self.promptCostChanged.emit(self.prompt_cost())

    def _update_warning(self, cast: dict[str, int | None]) -> None:
        notes = []
        for tag, vid in cast.items():
            sample = self.samples.get(vid) if vid is not None else None
            if sample is not None and not sample.has_transcript:
                notes.append(f"{sample.speaker_name} ([{tag}]) has no transcript: cloning needs the exact words "
                             "spoken in the sample. Add them in the voice library.")
        if cast["S1"] is not None and cast["S1"] == cast["S2"]:
            notes.append("Both speakers use the same voice sample.")
        colors = editor_colors()
        self.warning.setStyleSheet(f"color: {colors.warning.name()};")
        text = "⚠ " + " ".join(notes) if notes else (LOADING if self.loading else "")
        self.warning.setText(text)
        self.warning.setVisible(bool(text))
