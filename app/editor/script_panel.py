"""The editor with its status line (issue at the cursor / summary) and the length and budget meter."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

import engine
from app.editor import analysis
from app.editor.analysis import EditorIssue
from app.editor.script_editor import ScriptEditor
from app.theme import editor_colors


@dataclass(frozen=True)
class PromptCost:
    """What the chosen voices add to a render: prompt audio and transcript text tokens."""

    seconds: float = 0.0
    text_tokens: int = 0


class BudgetView(QWidget):
    """"≈ 12 s of speech" plus a bar of decoder frames used (prompt included) against the limit."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.estimate = QLabel("Empty script")
        self.estimate.setObjectName("budgetEstimate")
        self.estimate.setAccessibleName("Estimated audio length")
        self.estimate.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setObjectName("budgetBar")
        self.bar.setAccessibleName("Token budget used")
        # the share is a label beside the bar: text drawn on the bar straddles the fill edge, half unreadable
        self.bar.setTextVisible(False)
        self.bar.setFixedWidth(160)
        self.share = QLabel("")
        self.share.setObjectName("budgetShare")
        self.share.setAccessibleName("Share of one render")
        self.warning = QLabel()
        self.warning.setObjectName("budgetWarning")
        self.warning.setWordWrap(True)
        self.warning.hide()
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.estimate, 1)
        row.addWidget(self.bar)
        row.addWidget(self.share)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(row)
        layout.addWidget(self.warning)
        self.budget: engine.Budget | None = None

    def show_budget(self, budget: engine.Budget | None) -> None:
        self.budget = budget
        if budget is None or budget.estimated_seconds <= 0:
            self.estimate.setText("Empty script")
            self.bar.setRange(0, 1)
            self.bar.setValue(0)
            self.share.setText("")
            self.warning.hide()
            return
        prompt = f" + {budget.prompt_frames / engine.FRAMES_PER_SECOND:.1f} s voice prompt" if budget.prompt_frames else ""
        self.estimate.setText(
            f"≈ {budget.estimated_seconds:.1f} s of speech{prompt} · room for ≈ {budget.available_seconds:.0f} s · "
            f"text {budget.text_tokens}/{budget.max_text_tokens} tokens")
        self.bar.setRange(0, max(1, budget.frame_budget))
        self.bar.setValue(min(budget.estimated_frames, budget.frame_budget))
        share = budget.estimated_frames / max(1, budget.frame_budget)
        self.share.setText(f"{share:.0%} of one render")
        self.bar.setToolTip(f"{budget.estimated_frames} of {budget.frame_budget} audio frames "
                            f"(≈ {engine.FRAMES_PER_SECOND:.0f} per second, voice prompt included)")
        colors = editor_colors()
        palette = self.palette()
        if not budget.fits:
            palette.setColor(palette.ColorRole.Highlight, colors.error)
        elif share > 0.85:
            palette.setColor(palette.ColorRole.Highlight, colors.warning)
        self.bar.setPalette(palette)
        self.share.setToolTip(self.bar.toolTip())
        if budget.warnings:
            self.warning.setText("⚠ " + " · ".join(w[0].upper() + w[1:] for w in budget.warnings))
            self.warning.setStyleSheet(f"color: {(colors.error if not budget.fits else colors.warning).name()};")
            self.warning.show()
        else:
            self.warning.hide()


class ScriptPanel(QWidget):
    """Editor + status line + budget; recomputes the estimate when text, voices or max length change."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor = ScriptEditor()
        self.status = QLabel("Script OK")
        self.status.setObjectName("scriptStatus")
        self.status.setAccessibleName("Script check")
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setWordWrap(True)
        self.budget_view = BudgetView()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.editor, 1)
        layout.addWidget(self.status)
        layout.addWidget(self.budget_view)
        self.prompt_cost = PromptCost()
        self.max_new_tokens = engine.DEFAULT_MAX_NEW_TOKENS
        self._budget_timer = QTimer(self, singleShot=True, interval=200)
        self._budget_timer.timeout.connect(self.update_budget)
        self.editor.textChanged.connect(self._budget_timer.start)
        self.editor.issuesChanged.connect(self._show_status)
        self.editor.cursorIssueChanged.connect(self._show_status)
        self._show_status()
        self.update_budget()

    def set_prompt_cost(self, cost: PromptCost) -> None:
        self.prompt_cost = cost
        self.editor.set_prefix_tokens(cost.text_tokens)
        self.update_budget()

    def set_max_new_tokens(self, value: int) -> None:
        if value != self.max_new_tokens:
            self.max_new_tokens = value
            self.update_budget()

    def update_budget(self) -> None:
        self._budget_timer.stop()
        text = self.editor.toPlainText()
        if not text.strip():
            self.budget_view.show_budget(None)
            return
        self.budget_view.show_budget(engine.estimate_budget(
            text, prompt_seconds=self.prompt_cost.seconds, max_new_tokens=self.max_new_tokens,
            prefix_tokens=self.prompt_cost.text_tokens))

    def _show_status(self, *_args) -> None:
        issues = self.editor.issues
        cursor_issue = self.editor.issue_at(self.editor.textCursor().position())
        first_error = next((i for i in issues if i.is_error), None)
        shown: EditorIssue | None = cursor_issue or first_error
        colors = editor_colors()
        if shown is not None:
            kind = "Error" if shown.is_error else "Warning"
            self.status.setText(f"{kind} at line {shown.line}, column {shown.column}: {shown.message}"
                                + (f"  ({analysis.summary(issues)})" if len(issues) > 1 else ""))
            self.status.setStyleSheet(f"color: {(colors.error if shown.is_error else colors.warning).name()};")
        else:
            self.status.setText(analysis.summary(issues) if self.editor.toPlainText().strip() else
                                "Write a dialogue: start lines with [S1] and [S2]; cues like (laughs) in round brackets.")
            self.status.setStyleSheet("" if not issues else f"color: {colors.warning.name()};")

    def apply_colors(self) -> None:
        self.editor.apply_colors()
        self._show_status()
        self.update_budget()
