"""How the main window shows episodes.

The quick script view stays as it is (one render of a short script). The episode view sits in a
stack beside it: it shows while a project is open (File → New episode, Open a ``.diaproj``, or
"Make this script an episode", which turns the script on screen into a one-block-or-more episode)
and View → Quick script goes back. The mode and the project are remembered: the next start reopens
the project at the block the user was on, and offers to resume a render a crash interrupted.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMainWindow, QStackedWidget

import engine
from app import settings as opts
from app.episode.export_dialog import ExportDialog
from app.episode.rendering import EpisodePlayback, EpisodeRenderer
from app.episode.session import LAST_BLOCK, LAST_PROJECT, RENDER_INTERRUPTED, EpisodeSession, is_project_path
from app.episode.timeline import layout_episode
from app.episode.view import EpisodeView
from app.errors import describe
from app.remote import RemoteLibrary
from app.settings import Option

EPISODE_MODE = Option("episode/mode", False, bool)
OPEN_FILTER = "Scripts and episodes (*.txt *.dia *.diaproj);;Episodes (*.diaproj);;Scripts (*.txt *.dia);;All files (*)"
LEVEL_BINS = 48  # peak levels drawn per block in the overview
QWIDGETSIZE_MAX = (1 << 24) - 1  # Qt's "no maximum" for a widget's size


class EpisodeMode(QObject):
    """The episode view, its session, renderer and playback, wired into ``window``."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.settings = window.settings
        self.view = EpisodeView()
        self.session = EpisodeSession(self.settings, self.view.editor.document(), self, window.tasks)
        self.renderer = EpisodeRenderer(self.session, window.queue, self.settings, self, window.tasks)
        self.playback = EpisodePlayback(self.session, window.player, self)
        self.view.model.live = self.renderer.live
        self.export_dialog: ExportDialog | None = None
        self._takes: dict[int, tuple[float, list[float]]] = {}  # take id -> trimmed seconds, peak levels
        self._choosing: dict[str, int] = {}  # character -> the newest library voice asked for (older ones drop)
        self._syncing = False

        self.stack = QStackedWidget()
        self.stack.setObjectName("view_stack")
        window.main_splitter.replaceWidget(0, self.stack)
        self.stack.addWidget(window.script_view)
        self.stack.addWidget(self.view)
        self._closed = False
        self.stack.destroyed.connect(self._stop_following)
        self._menus()
        self._connect()

    # -- construction

    def _menus(self) -> None:
        bar = self.window.menuBar()
        menus = {a.text(): a.menu() for a in bar.actions() if a.menu() is not None}
        file_menu = menus["&File"]
        first = file_menu.actions()[2]  # after New script and Open
        self.new_action = self._action("New &episode", self.new_episode, "Ctrl+Shift+N", "action_new_episode")
        self.convert_action = self._action("Make this script an &episode", self.script_to_episode, None,
                                           "action_script_to_episode")
        file_menu.insertAction(first, self.new_action)
        file_menu.insertAction(first, self.convert_action)
        view_menu = menus["&View"]
        view_menu.addSeparator()
        self.mode_action = self._action("&Episode view", lambda on: self.show_episode(on), "Ctrl+Shift+E",
                                        "action_episode_mode")
        self.mode_action.setCheckable(True)
        view_menu.addAction(self.mode_action)

    def _action(self, text: str, slot, shortcut, name: str) -> QAction:
        action = QAction(text, self.window)
        action.setObjectName(name)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        return action

    def _connect(self) -> None:
        w, m, v, s = self.window, self.window.menus, self.view, self.session
        # File and Edit commands go to whichever view is showing
        m.saveRequested.disconnect(w.files.save)
        m.saveRequested.connect(lambda: s.save() if self.active else w.files.save())
        m.saveAsRequested.disconnect(w.files.ask_save_as)
        m.saveAsRequested.connect(lambda: self.ask_save_as() if self.active else w.files.ask_save_as())
        m.recentRequested.disconnect(w.files.open)
        m.recentRequested.connect(self.open_any)
        m.editRequested.disconnect(w.script_view.edit)
        m.editRequested.connect(self._edit)
        m.openRequested.disconnect()  # the window's own handler only knew scripts
        m.openRequested.connect(self._open_requested)
        m.renderRequested.disconnect(w.render)
        m.renderRequested.connect(lambda: self.renderer.render() if self.active else w.render())
        m.exportRequested.disconnect(w.exporter.ask_export_current)
        m.exportRequested.connect(lambda: self.open_export() if self.active else w.exporter.ask_export_current())
        s.recentChanged.connect(m.set_recent)
        s.errorRaised.connect(w.show_error)
        s.statusMessage.connect(w.statusBar().showMessage)
        s.titleChanged.connect(lambda title: w.setWindowTitle(title) if self.active else None)
        s.blocksChanged.connect(self._blocks_changed)
        s.castChanged.connect(self._cast_changed)
        s.undo_stack.canUndoChanged.connect(lambda _c: self._update_undo())
        s.undo_stack.canRedoChanged.connect(lambda _c: self._update_undo())

        v.editor.undoRequested.connect(s.undo_stack.undo)
        v.editor.redoRequested.connect(s.undo_stack.redo)
        v.editor.cursorPositionChanged.connect(self._cursor_moved)
        v.table.selectionModel().selectionChanged.connect(lambda *_: self._block_selected())
        v.render_all.clicked.connect(lambda: self.renderer.render())
        v.resume_button.clicked.connect(lambda: self.renderer.render())
        v.render_changed.clicked.connect(lambda: self.renderer.render(changed_only=True))
        v.stop_button.clicked.connect(self.renderer.stop)
        v.play_episode.clicked.connect(lambda: self.playback.play_from(max(0, v.selected_block())))
        v.export_button.clicked.connect(self.open_export)
        v.previous_take.clicked.connect(lambda: self._on_block(lambda i: s.step_take(i, -1)))
        v.next_take.clicked.connect(lambda: self._on_block(lambda i: s.step_take(i, 1)))
        v.regenerate.clicked.connect(lambda: self._on_block(self.renderer.regenerate))
        v.lock.clicked.connect(lambda on: self._on_block(lambda i: s.set_locked(i, on)))
        v.play_block.clicked.connect(lambda: self._on_block(self.play_block))
        v.keep_voice.activated.connect(self._keep_voice)
        v.star.clicked.connect(lambda on: self._on_take(lambda take: s.star_take(take, on)))
        v.take_name.editingFinished.connect(lambda: self._on_take(lambda take: s.label_take(take, v.take_name.text())))
        v.switch_ab.clicked.connect(self.switch_ab)
        s.opened.connect(lambda _p: self._takes.clear())
        v.cast.voiceChosen.connect(self._voice_chosen)
        w.cast_panel.voicesListed.connect(self._library_listed)
        v.overview.seekRequested.connect(self._seek)
        actions = v.actions_by_name
        actions["next_block"].triggered.connect(lambda: self._step_block(1))
        actions["previous_block"].triggered.connect(lambda: self._step_block(-1))
        actions["next_take"].triggered.connect(v.next_take.click)
        actions["previous_take"].triggered.connect(v.previous_take.click)
        actions["regenerate"].triggered.connect(v.regenerate.click)
        actions["lock"].triggered.connect(v.lock.click)
        actions["play_block"].triggered.connect(v.play_block.click)
        actions["render_all"].triggered.connect(v.render_all.click)
        actions["stop"].triggered.connect(v.stop_button.click)
        actions["switch_ab"].triggered.connect(v.switch_ab.click)
        actions["star"].triggered.connect(v.star.click)
        w.player.positionChanged.connect(self._follow)

        r = self.renderer
        r.blockChanged.connect(self._live_changed)
        r.progressChanged.connect(self._progress)
        r.idle.connect(lambda text: w.statusBar().showMessage(text, 8000))
        r.blockFinished.connect(lambda _i: self._update_buttons())
        self.playback.playingBlock.connect(self._playing)

    # -- mode

    @property
    def active(self) -> bool:
        return self.stack.currentWidget() is self.view

    def show_episode(self, on: bool = True) -> None:
        """Show the episode view (opening the last project, or a new one, if none is open) or the script view."""
        if on and self.session.project is None:
            last = self.settings.get(LAST_PROJECT)
            if not (last and Path(last).is_file() and self.session.open(last)) and not self.session.new():
                on = False
        was = self.active
        self.stack.setCurrentWidget(self.view if on else self.window.script_view)
        self.window.render_bar.setVisible(not on)  # the episode view has its own render controls
        self.window.player_panel.waveform.setVisible(not on)  # and its own timeline: the player is one row
        bottom = self.window.main_splitter.widget(1)
        for widget in (self.window.player_panel, bottom):  # inner first: the bottom's hint includes the player's
            widget.layout().invalidate()
            widget.layout().activate()  # else the hint below still counts the widgets just hidden
        bottom.setMaximumHeight(bottom.minimumSizeHint().height() if on else QWIDGETSIZE_MAX)
        if on and not was:
            self._make_room()
        self.mode_action.setChecked(on)
        self.settings.set(EPISODE_MODE, on)
        self.window.setWindowTitle(self.session.title() if on else self.window.document.title())
        (self.view.editor if on else self.window.editor).setFocus()
        self._update_undo()

    def _make_room(self) -> None:
        """The episode view gets the height; the player row keeps its own."""
        splitter = self.window.main_splitter
        total = sum(splitter.sizes())
        bottom = splitter.widget(1).minimumSizeHint().height()
        if total > bottom:
            splitter.setSizes([total - bottom, bottom])

    def restore(self) -> None:
        """At start: back into the episode view where the user left it; offer to resume a crashed render."""
        if not self.settings.get(EPISODE_MODE):
            return
        self.show_episode(True)
        if self.session.project is None:
            return
        self.view.select_block(self.settings.get(LAST_BLOCK))
        if self.settings.get(RENDER_INTERRUPTED) == str(self.session.path):
            left = len(engine.pending_blocks(self.session.project))
            if left:
                self.view.resume_button.setText(f"Resume render ({left} left)")
                self.view.resume_button.show()
                self.window.statusBar().showMessage(
                    f"The last render stopped before it finished; {left} block(s) still need a take. "
                    "Press “Resume render” to go on.", 15000)

    # -- files

    def new_episode(self) -> None:
        if self.session.new():
            self.show_episode(True)

    def script_to_episode(self) -> None:
        """The quick script as an episode (a short script is a one-block episode)."""
        if self.session.new(self.window.document.text()):
            self.show_episode(True)

    def open_any(self, path: str | Path) -> bool:
        """A ``.diaproj`` opens in the episode view, anything else in the script view."""
        if is_project_path(path):
            if not Path(path).is_file():
                self.window.show_error(_missing(path))
                return False
            ok = self.session.open(path)
            if ok:
                self.show_episode(True)
            return ok
        ok = self.window.files.open(path)
        if ok:
            self.show_episode(False)
        return ok

    def _open_requested(self) -> None:
        start = self.settings.get(opts.LAST_DIR) or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self.window, "Open script or episode", start, OPEN_FILTER)
        if path:
            self.open_any(path)

    def ask_save_as(self) -> bool:
        start = str(self.session.path) if self.session.path else str(Path.home() / "episode.diaproj")
        if self.session.untitled:
            start = str(Path(self.settings.get(opts.LAST_DIR) or Path.home()) / "episode.diaproj")
        path, _ = QFileDialog.getSaveFileName(self.window, "Save episode as", start, "Episodes (*.diaproj)")
        return self.session.save_as(path) if path else False

    def open_export(self) -> ExportDialog | None:
        if self.session.project is None:
            return None
        self.export_dialog = ExportDialog(self.session.project, self.window.tasks, self.window)
        self.export_dialog.open()
        return self.export_dialog

    # -- edits

    def _edit(self, command: str) -> None:
        if not self.active:
            self.window.script_view.edit(command)
            return
        editor = self.view.editor
        {"undo": self.session.undo_stack.undo, "redo": self.session.undo_stack.redo, "cut": editor.cut,
         "copy": editor.copy, "paste": editor.paste, "select_all": editor.selectAll,
         "complete": lambda: editor.update_completion(force=True), "next_issue": lambda: None}[command]()

    def _update_undo(self) -> None:
        if not self._closed and self.active:
            self.window.menus.undo_action.setEnabled(self.session.undo_stack.canUndo())
            self.window.menus.redo_action.setEnabled(self.session.undo_stack.canRedo())

    def _voice_chosen(self, character: str, choice) -> None:
        self._choosing[character] = self._choosing.get(character, 0) + 1
        if choice is None:
            self.session.set_cast(character, None, f"Random voice for {character}")
            return
        kind, ident = choice
        if kind == "library" and self.window.library is not None:
            self._cast_library_voice(character, ident)
        elif kind == "project":
            pv = next(v for v in self.session.project.voices() if v.id == ident)
            self.session.set_cast(character, self.session.voice_input(pv), f"Cast {character} as {pv.name}")

    def _cast_library_voice(self, character: str, sample_id: int) -> None:
        """Fetch a library voice's audio in the background (the library may be a server's), then cast it
        if the same episode and library are still open and nothing newer was chosen for ``character``."""
        library, project, asked = self.window.library, self.session.project, self._choosing[character]

        def fetch() -> engine.VoiceInput:
            sample = library.get(sample_id)
            return engine.VoiceInput(sample.speaker_name, library.load_audio(sample), sample.transcript, "library",
                                     sample.uid)

        def current() -> bool:  # else: another episode, library or choice since; or the window closed
            return (not self._closed and self.session.project is project and self.window.library is library
                    and self._choosing[character] == asked)

        def done(voice: engine.VoiceInput) -> None:
            if current():
                self.window.statusBar().clearMessage()
                self.session.set_cast(character, voice, f"Cast {character} as {voice.name}")

        def failed(exc: BaseException) -> None:
            if current():
                self.window.show_error(describe(exc))
                self.view.cast._shown = None  # noqa: SLF001 - show the cast as it is again, not the failed choice
                self._cast_changed(project.cast())

        self.window.statusBar().showMessage(f"Getting the voice for {character} from {_where(library)}…")
        self.window.tasks.run(fetch, done, failed)

    def _keep_voice(self, _row: int) -> None:
        character = self.view.keep_voice.currentData()
        index = self.view.selected_block()
        self.view.keep_voice.setCurrentIndex(0)
        if character and index >= 0:
            self.session.keep_voice(index, character, self.window.library)

    # -- blocks

    def _on_block(self, fn) -> None:
        index = self.view.selected_block()
        if index >= 0:
            fn(index)
            self._update_buttons()

    def _step_block(self, step: int) -> None:
        count = self.view.model.rowCount()
        if count:
            self.view.select_block(max(0, min(count - 1, self.view.selected_block() + step)))

    def play_block(self, index: int) -> None:
        block = self.session.blocks[index]
        if block.chosen is not None:
            self.window.player.load(self.session.project.take_audio(block.chosen), engine.TARGET_SAMPLE_RATE,
                                    ("episode-block", block.identity))
            self.window.player.play()

    def _on_take(self, fn) -> None:
        """Apply ``fn`` to the selected block's chosen take."""
        index = self.view.selected_block()
        blocks = self.session.blocks
        if 0 <= index < len(blocks) and blocks[index].chosen is not None:
            fn(blocks[index].chosen)

    def switch_ab(self) -> str:
        """Play the chosen take (A); when A or B is playing, carry on in the other from the same moment.
        Returns "A" or "B", what is heard now ("" when there is nothing to compare)."""
        index = self.view.selected_block()
        if index < 0 or self.view.compare.currentData() is None:
            return ""
        block = self.session.blocks[index]
        a, b = block.chosen, self.view.compare.currentData()
        player = self.window.player
        hearing = {("episode-take", a): "A", ("episode-take", b): "B"}.get(player.source)
        target, position = (b, player.position) if hearing == "A" else (a, player.position if hearing else 0.0)
        resume = hearing is None or player.state in ("playing", "buffering")  # a paused comparison stays paused
        player.load(self.session.project.take_audio(target), engine.TARGET_SAMPLE_RATE, ("episode-take", target))
        player.seek(min(position, player.duration))
        if resume:
            player.play()
        heard = "A" if target == a else "B"
        self.view.hearing.setText(f"Hearing {heard}")
        return heard

    def _seek(self, index: int, seconds: float) -> None:
        """Play the episode from ``seconds`` into block ``index`` (a click on the timeline)."""
        self.view.select_block(index)
        self.playback.play_from(index)
        self.window.player.seek(seconds)

    def _follow(self, seconds: float) -> None:
        """The timeline's playhead follows the episode's playback."""
        canvas = self.view.overview
        if self._closed or not self.playback.active:
            if canvas.position >= 0:
                canvas.position = -1.0
                canvas.update()
            return
        spans = dict(zip(canvas.layout_.blocks, canvas.layout_.spans))
        canvas.follow(spans.get(self.playback.first, (0.0, 0.0))[0] + seconds)

    def _blocks_changed(self, blocks: list) -> None:
        selected = self.view.selected_block()
        self.view.model.set_blocks(blocks)
        rendered = {b.index: self._take(b.chosen) for b in blocks if b.chosen is not None and not b.needs_render}
        layout = layout_episode(blocks, self.session.project.chapters(),
                                {i: length for i, (length, _lv) in rendered.items()})
        self.view.overview.set_layout(layout, {i: levels for i, (_length, levels) in rendered.items()})
        self.view.timeline._sync_scrollbar()  # noqa: SLF001 - the length shown beside it
        done = sum(1 for b in blocks if not b.needs_render)
        total = layout.duration
        self.view.name_label.setText(f"<b>{self.session.path.stem}</b> · {len(blocks)} blocks, {done} rendered · "
                                     f"≈ {total / 60:.1f} min")
        if 0 <= selected < len(blocks):
            self.view.select_block(selected)
        self._update_buttons()

    def _take(self, take_id: int) -> tuple[float, list[float]]:
        """A take's length as the export joins it (trimmed) and its peak levels (read once per take)."""
        if take_id not in self._takes:
            audio = self.session.project.take_audio(take_id)
            trimmed, _spans = engine.join_blocks([audio], set(), engine.MasterSettings(), engine.TARGET_SAMPLE_RATE)
            self._takes[take_id] = (trimmed.shape[0] / engine.TARGET_SAMPLE_RATE, _levels(trimmed))
        return self._takes[take_id]

    def _cast_changed(self, cast: dict) -> None:
        # the voices the cast panel listed (a server's arrive in the background: ``voicesListed``)
        self.view.cast.set_library(list(self.window.cast_panel.samples.values()))
        self.view.cast.set_cast(cast, self.session.project.voices() if self.session.project else [])

    def _library_listed(self) -> None:
        if not self._closed and self.session.project is not None:
            self._cast_changed(self.session.project.cast())

    def _live_changed(self, identity: str) -> None:
        self.view.model.refresh_identity(identity)
        self._update_buttons()

    def _progress(self, text: str, fraction: float) -> None:
        self.view.progress.setVisible(bool(text))
        self.view.progress.setValue(round(fraction * 1000))
        if text:
            self.window.statusBar().showMessage(text)
            self.view.resume_button.hide()

    def _update_buttons(self) -> None:
        index = self.view.selected_block()
        blocks = self.session.blocks
        self.view.show_block_actions(blocks[index] if 0 <= index < len(blocks) else None)
        self.view.stop_button.setEnabled(self.renderer.busy)

    def _block_selected(self) -> None:
        index = self.view.selected_block()
        self._update_buttons()
        self.view.overview.selected = index
        self.view.overview.update()
        if index < 0 or self._syncing:
            return
        self.settings.set(LAST_BLOCK, index)
        first, last = self._lines(index)
        self._syncing = True
        self.view.editor.select_lines(first, last)
        self._syncing = False

    def _lines(self, index: int) -> tuple[int, int]:
        """The script lines of block ``index`` (1-based, inclusive)."""
        blocks = self.session.blocks
        first = blocks[index].line
        following = next((b.line for b in blocks[index + 1:] if b.line > first), None)
        last = following - 1 if following is not None else self.view.editor.document().blockCount()
        while last > first and not self.view.editor.document().findBlockByNumber(last - 1).text().strip():
            last -= 1
        return first, last

    def _cursor_moved(self) -> None:
        if self._syncing or not self.session.blocks:
            return
        line = self.view.editor.textCursor().blockNumber() + 1
        index = max((b.index for b in self.session.blocks if b.line <= line), default=0)
        self._syncing = True
        self.view.select_block(index)
        self._syncing = False

    def _playing(self, index: int) -> None:
        self.view.model.set_playing(index)
        self.view.overview.playing = index
        self.view.overview.update()
        if 0 <= index < len(self.session.blocks):
            self.view.editor.mark_lines(*self._lines(index))
        else:
            self.view.editor.mark_lines(0, 0)

    # -- shutdown

    def shutdown(self) -> None:
        """Put the last typing into the project and close it."""
        self._stop_following()
        self.session.close()

    def _stop_following(self, *_args) -> None:
        """The widgets are going: signals that arrive from now on change nothing on screen."""
        self._closed = True


def _where(library) -> str:
    return library.root if isinstance(library, RemoteLibrary) else "the voice library"


def _levels(audio) -> list[float]:
    if audio.size == 0:
        return []
    bins = [abs(chunk).max() if chunk.size else 0.0 for chunk in _split(audio, LEVEL_BINS)]
    peak = max(max(bins), 1e-6)
    return [min(1.0, float(b) / peak) for b in bins]


def _split(audio, n: int) -> list:
    size = max(1, -(-audio.size // n))
    return [audio[i:i + size] for i in range(0, audio.size, size)]


def _missing(path) -> object:
    from app.errors import UserError

    return UserError("The episode can't be opened", f"{Path(path).name} does not exist.",
                     "Check the path, or open it with File → Open.", code="storage_error")
