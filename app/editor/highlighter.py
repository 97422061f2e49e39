"""Syntax highlighting of dialogue scripts: speaker tags, nonverbal cues, and the validator's issues.

Rules are compiled once and formats prebuilt; issues (from the debounced validator) are laid over
the rule formats as wavy underlines: red for errors, amber for warnings. Issues are indexed by
block, and underlines are applied per run (not per character), so a long pasted text with a
document-long "too long" error stays fast.
"""

from __future__ import annotations

import re
from collections import defaultdict

from PySide6.QtGui import QFont, QSyntaxHighlighter, QTextCharFormat, QTextDocument

import engine
from app.editor.analysis import EditorIssue, Utf16Offsets
from app.theme import EditorColors, editor_colors

_TAG_RE = re.compile(r"\[S[12]\]")
_CUE_RE = re.compile(r"\([^()\[\]\r\n]*\)")


class ScriptHighlighter(QSyntaxHighlighter):
    """Colours ``[S1]``/``[S2]`` differently, known cues in italics, unknown cues underlined."""

    def __init__(self, document: QTextDocument) -> None:
        super().__init__(document)
        self._known = frozenset(engine.KNOWN_CUES)
        self._issues: list[EditorIssue] = []
        self._by_block: dict[int, list[EditorIssue]] = {}
        self.set_colors(editor_colors())

    def set_colors(self, colors: EditorColors) -> None:
        self.colors = colors
        self.s1 = QTextCharFormat()
        self.s1.setForeground(colors.s1)
        self.s1.setFontWeight(QFont.Weight.Bold)
        self.s2 = QTextCharFormat()
        self.s2.setForeground(colors.s2)
        self.s2.setFontWeight(QFont.Weight.Bold)
        self.cue = QTextCharFormat()
        self.cue.setForeground(colors.cue)
        self.cue.setFontItalic(True)
        self.unknown_cue = QTextCharFormat()
        self.unknown_cue.setForeground(colors.unknown_cue)
        self.unknown_cue.setFontItalic(True)
        self.unknown_cue.setUnderlineStyle(QTextCharFormat.UnderlineStyle.DotLine)
        self.unknown_cue.setUnderlineColor(colors.warning)
        self.rehighlight()

    def set_issues(self, issues: list[EditorIssue]) -> None:
        """Show these issues (document positions); re-highlights the document."""
        self._issues = list(issues)
        self._by_block = self._index(self._issues)
        self.rehighlight()

    def _index(self, issues: list[EditorIssue]) -> dict[int, list[EditorIssue]]:
        doc = self.document()
        index: dict[int, list[EditorIssue]] = defaultdict(list)
        for issue in issues:
            first = doc.findBlock(issue.start).blockNumber()
            last = doc.findBlock(max(issue.start, issue.end - 1)).blockNumber()
            if first < 0:
                continue
            for number in range(first, max(first, last) + 1):
                index[number].append(issue)
        return dict(index)

    def highlightBlock(self, text: str) -> None:  # noqa: N802 - Qt override
        # Qt positions count UTF-16 units; Python's match offsets count code points.
        to_qt = Utf16Offsets(text)
        runs: list[tuple[int, int, QTextCharFormat]] = []
        for match in _TAG_RE.finditer(text):
            runs.append((to_qt(match.start()), to_qt(match.end()), self.s1 if match.group() == "[S1]" else self.s2))
        for match in _CUE_RE.finditer(text):
            fmt = self.cue if match.group() in self._known else self.unknown_cue
            runs.append((to_qt(match.start()), to_qt(match.end()), fmt))
        for start, end, fmt in runs:
            self.setFormat(start, end - start, fmt)
        issues = self._by_block.get(self.currentBlock().blockNumber())
        if issues:
            self._underline(issues, sorted(runs, key=lambda r: r[0]), to_qt(len(text)))

    def _underline(self, issues: list[EditorIssue], runs: list[tuple[int, int, QTextCharFormat]],
                   length: int) -> None:
        block_start = self.currentBlock().position()
        for issue in sorted(issues, key=lambda i: i.is_error):  # errors last, so they win
            start = max(issue.start - block_start, 0)
            end = min(max(issue.end, issue.start + 1) - block_start, max(length, 1))
            if end <= start:
                continue
            color = self.colors.error if issue.is_error else self.colors.warning
            # split [start, end) at the rule runs so each piece keeps its colour and gains the underline
            cuts = sorted({start, end, *(p for s, e, _ in runs for p in (s, e) if start < p < end)})
            for a, b in zip(cuts, cuts[1:]):
                base = next((fmt for s, e, fmt in runs if s <= a < e), None)
                fmt = QTextCharFormat(base) if base is not None else QTextCharFormat()
                fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
                fmt.setUnderlineColor(color)
                fmt.setToolTip(issue.message)
                self.setFormat(a, b - a, fmt)
