"""The dialogue script editor: line numbers with issue marks, live validation, completion, tooltips."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, QStringListModel, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFontDatabase, QKeyEvent, QPainter, QTextCursor, QTextFormat
from PySide6.QtWidgets import QCompleter, QPlainTextEdit, QTextEdit, QToolTip, QWidget

import engine
from app.editor import analysis
from app.editor.analysis import EditorIssue
from app.editor.highlighter import ScriptHighlighter
from app.theme import editor_colors

CHECK_DELAY_MS = 150
COMPLETIONS = [*engine.SPEAKER_TAGS, *engine.KNOWN_CUES]


class _LineNumbers(QWidget):
    """The gutter: line numbers, with a red (error) or amber (warning) bar on lines with issues."""

    def __init__(self, editor: ScriptEditor) -> None:
        super().__init__(editor)
        self.editor = editor
        self.setAccessibleName("Line numbers")

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(self.editor.gutter_width(), 0)

    def paintEvent(self, event) -> None:  # noqa: N802
        self.editor.paint_gutter(self, event)


class ScriptEditor(QPlainTextEdit):
    """A plain-text editor for ``[S1]``/``[S2]`` scripts. Validation runs shortly after each edit."""

    # Signals never carry None: PySide6 (6.12, Python 3.11) over-releases None when it crosses a signal
    # or comes back from an invalid QVariant, which crashes the interpreter later.
    issuesChanged = Signal(object)  # list[EditorIssue]
    fileDropped = Signal(str)  # a script file was dropped on the editor
    cursorIssueChanged = Signal()  # the issue under the cursor changed; read it with issue_at()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("scriptEditor")
        self.setAccessibleName("Script editor")
        self.setToolTip("")  # issue tooltips are shown per character
        self.setPlaceholderText("[S1] Write the first speaker's line here.\n[S2] And the answer here. (laughs)")
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.setTabChangesFocus(True)  # Tab moves focus: keyboard users can leave the editor
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setPointSizeF(max(font.pointSizeF(), 11.0))
        self.setFont(font)
        self.highlighter = ScriptHighlighter(self.document())
        self.colors = editor_colors()
        self._issues: list[EditorIssue] = []
        self._checked_text: str | None = None
        self._prefix_tokens = 0
        self._gutter = _LineNumbers(self)
        self._check_timer = QTimer(self, singleShot=True, interval=CHECK_DELAY_MS)
        self._check_timer.timeout.connect(self.check_now)
        self._last_cursor_issue: EditorIssue | None = None

        self.completer = QCompleter(QStringListModel(COMPLETIONS, self), self)
        self.completer.setWidget(self)
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.completer.setFilterMode(Qt.MatchFlag.MatchStartsWith)
        self.completer.activated.connect(self.insert_completion)
        self.completer.popup().setAccessibleName("Tag and cue suggestions")

        self.blockCountChanged.connect(self._update_gutter_width)
        self.updateRequest.connect(self._update_gutter)
        self.cursorPositionChanged.connect(self._cursor_moved)
        self.textChanged.connect(self._check_timer.start)
        self._update_gutter_width()
        self._cursor_moved()

    # -- validation

    @property
    def issues(self) -> list[EditorIssue]:
        return list(self._issues)

    def set_prefix_tokens(self, tokens: int) -> None:
        """Text tokens the voice prompt's transcripts take (they count against Dia's limit)."""
        if tokens != self._prefix_tokens:
            self._prefix_tokens = tokens
            self._checked_text = None
            self._check_timer.start()

    def check_now(self) -> None:
        """Validate the current text immediately (normally debounced after edits)."""
        self._check_timer.stop()
        text = self.toPlainText()
        if text == self._checked_text:
            return
        self._checked_text = text
        self._issues = self.find_issues(text) if text.strip() else []
        self.highlighter.set_issues(self._issues)
        self._gutter.update()
        self.issuesChanged.emit(self.issues)
        self._last_cursor_issue = None
        self._cursor_moved()

    def find_issues(self, text: str) -> list[EditorIssue]:
        """The issues of ``text`` in document positions (an episode editor checks its own syntax)."""
        return analysis.check(text, prefix_tokens=self._prefix_tokens)

    def issue_at(self, position: int) -> EditorIssue | None:
        """The most severe issue covering this document position."""
        hits = [i for i in self._issues if i.start <= position < max(i.end, i.start + 1)]
        hits.sort(key=lambda i: not i.is_error)
        return hits[0] if hits else None

    def go_to(self, line: int, column: int = 1) -> None:
        """Put the cursor at a 1-based line and column (as the engine reports them)."""
        block = self.document().findBlockByNumber(max(0, line - 1))
        if not block.isValid():
            return
        cursor = QTextCursor(block)
        # the engine counts code points; move by characters within the line
        text = block.text()
        column = min(max(1, column), len(text) + 1)
        cursor.setPosition(block.position() + analysis.Utf16Offsets(text)(column - 1))
        self.setTextCursor(cursor)
        self.centerCursor()
        self.setFocus()

    def insert_text(self, text: str) -> None:
        """Insert at the cursor as one undoable step."""
        self.textCursor().insertText(text)
        self.setFocus()

    def _cursor_moved(self) -> None:
        cursor = self.textCursor()
        issue = self.issue_at(cursor.position())
        if issue is None and cursor.position() > 0:
            issue = self.issue_at(cursor.position() - 1)
        if issue != self._last_cursor_issue:
            self._last_cursor_issue = issue
            self.cursorIssueChanged.emit()
        self._highlight_current_line()

    def _highlight_current_line(self) -> None:
        selection = QTextEdit.ExtraSelection()
        selection.format.setBackground(self.colors.current_line)
        selection.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
        selection.cursor = self.textCursor()
        selection.cursor.clearSelection()
        self.setExtraSelections([selection])

    def apply_colors(self) -> None:
        """Re-read the palette's colours (after a theme change)."""
        self.colors = editor_colors()
        self.highlighter.set_colors(self.colors)
        self._highlight_current_line()
        self._gutter.update()

    def canInsertFromMimeData(self, source) -> bool:  # noqa: N802
        return bool(self._dropped_script(source)) or super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source) -> None:  # noqa: N802
        path = self._dropped_script(source)
        if path:
            self.fileDropped.emit(path)  # open it, rather than pasting its path as text
        else:
            super().insertFromMimeData(source)

    @staticmethod
    def _dropped_script(source) -> str:
        if not source.hasUrls():
            return ""
        for url in source.urls():
            if url.isLocalFile() and url.toLocalFile().lower().endswith((".txt", ".dia")):
                return url.toLocalFile()
        return ""

    def changeEvent(self, event) -> None:  # noqa: N802
        super().changeEvent(event)
        if event.type() in (event.Type.PaletteChange, event.Type.ApplicationPaletteChange):
            self.apply_colors()

    # -- tooltips

    def viewportEvent(self, event) -> bool:  # noqa: N802
        if event.type() == event.Type.ToolTip:
            cursor = self.cursorForPosition(event.pos())
            issue = self.issue_at(cursor.position())
            if issue is None:
                QToolTip.hideText()
            else:
                kind = "Error" if issue.is_error else "Warning"
                QToolTip.showText(event.globalPos(), f"{kind}: {issue.message}", self.viewport())
            return True
        return super().viewportEvent(event)

    # -- completion

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        popup = self.completer.popup()
        if popup.isVisible() and event.key() in (Qt.Key.Key_Enter, Qt.Key.Key_Return, Qt.Key.Key_Tab,
                                                  Qt.Key.Key_Backtab, Qt.Key.Key_Escape):
            event.ignore()  # the completer handles these
            return
        forced = event.key() == Qt.Key.Key_Space and event.modifiers() == Qt.KeyboardModifier.ControlModifier
        if not forced:
            super().keyPressEvent(event)
        if not event.text() and not forced:
            return
        self.update_completion(force=forced)

    def completion_prefix(self) -> str:
        """The unfinished tag or cue before the cursor (``[S``, ``(lau``), or ""."""
        cursor = self.textCursor()
        block_text = cursor.block().text()[:cursor.positionInBlock()]
        opener = max(block_text.rfind("["), block_text.rfind("("))
        if opener < 0:
            return ""
        prefix = block_text[opener:]
        if any(ch in prefix[1:] for ch in "[]()") or len(prefix) > 20:
            return ""
        return prefix

    def update_completion(self, force: bool = False) -> None:
        prefix = self.completion_prefix()
        popup = self.completer.popup()
        if not prefix and not force:
            popup.hide()
            return
        self.completer.setCompletionPrefix(prefix)
        if self.completer.completionCount() == 0 or (
                self.completer.completionCount() == 1 and self.completer.currentCompletion() == prefix):
            popup.hide()
            return
        popup.setCurrentIndex(self.completer.completionModel().index(0, 0))
        rect = self.cursorRect()
        rect.setWidth(popup.sizeHintForColumn(0) + popup.verticalScrollBar().sizeHint().width() + 12)
        self.completer.complete(rect)

    def insert_completion(self, completion: str) -> None:
        prefix = self.completion_prefix()
        cursor = self.textCursor()
        cursor.beginEditBlock()
        following = cursor.block().text()[cursor.positionInBlock():][:1]
        cursor.movePosition(QTextCursor.MoveOperation.Left, QTextCursor.MoveMode.KeepAnchor, len(prefix))
        needs_space = completion in engine.SPEAKER_TAGS and following != " "
        cursor.insertText(completion + (" " if needs_space else ""))
        cursor.endEditBlock()
        self.setTextCursor(cursor)
        self.completer.popup().hide()

    # -- gutter

    def gutter_width(self) -> int:
        digits = len(str(max(1, self.blockCount())))
        return 14 + self.fontMetrics().horizontalAdvance("9") * max(2, digits)

    def _update_gutter_width(self, _count: int = 0) -> None:
        self.setViewportMargins(self.gutter_width(), 0, 0, 0)

    def _update_gutter(self, rect: QRect, dy: int) -> None:
        if dy:
            self._gutter.scroll(0, dy)
        else:
            self._gutter.update(0, rect.y(), self._gutter.width(), rect.height())

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        cr = self.contentsRect()
        self._gutter.setGeometry(QRect(cr.left(), cr.top(), self.gutter_width(), cr.height()))

    def _issue_lines(self) -> dict[int, bool]:
        """Block number -> True if it holds an error (else a warning)."""
        doc = self.document()
        marks: dict[int, bool] = {}
        for issue in self._issues:
            number = doc.findBlock(issue.start).blockNumber()
            marks[number] = marks.get(number, False) or issue.is_error
        return marks

    def paint_gutter(self, gutter: QWidget, event) -> None:
        painter = QPainter(gutter)
        painter.fillRect(event.rect(), self.colors.line_numbers_bg)
        marks = self._issue_lines()
        block = self.firstVisibleBlock()
        number = block.blockNumber()
        top = round(self.blockBoundingGeometry(block).translated(self.contentOffset()).top())
        bottom = top + round(self.blockBoundingRect(block).height())
        height = self.fontMetrics().height()
        current = self.textCursor().blockNumber()
        while block.isValid() and top <= event.rect().bottom():
            if block.isVisible() and bottom >= event.rect().top():
                if number in marks:
                    painter.fillRect(0, top, 3, height, self.colors.error if marks[number] else self.colors.warning)
                color = QColor(self.colors.line_numbers)
                if number == current:
                    color = self.palette().color(self.palette().ColorRole.Text)
                painter.setPen(color)
                painter.drawText(0, top, gutter.width() - 6, height, Qt.AlignmentFlag.AlignRight,
                                 str(number + 1))
            block = block.next()
            top = bottom
            bottom = top + round(self.blockBoundingRect(block).height())
            number += 1
        painter.end()
