"""Model settings: where renders run (this computer, or a Dia Studio server), where the Dia model and DAC codec
are, download with progress, device, precision; and the question asked before a render would download them."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

import engine
from app import settings as opts
from app.errors import describe
from app.remote import RemoteTarget
from app.settings import Option, Settings
from app.tasks import TaskRunner

log = logging.getLogger(__name__)

LOCAL, SERVER = "local", "server"
RENDER_ON = Option("model/render_on", LOCAL, str)  # LOCAL: this computer; SERVER: a Dia Studio server
SERVER_URL = Option("model/server_url", "", str)
SERVER_TOKEN = Option("model/server_token", "", str)  # in the private (0600) settings file
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")
# How the app names each of the engine's weight modes (engine.QUANTIZE_MODES); a mode without a label shows its id.
QUANTIZE_LABELS = {
    "": ("Exact (the precision above)", "The model as trained: the reference for every other mode."),
    "int8": ("int8 — faster on the CPU, nearly exact",
             "8-bit decoder weights: faster than bfloat16 on a CPU, with codes close to bfloat16's."),
    "int8-dynamic": ("int8, activations too — only faster on some CPUs",
                     "Quantises activations as well (FBGEMM/QNNPACK): faster only where those libraries are."),
    "int4": ("int4 — fastest on the CPU, least exact",
             "4-bit decoder weights in groups of 128: the least memory and the fastest CPU renders; voices may "
             "drift more than with int8. Try it, and go back to int8 if a voice sounds off."),
}


def size_text(size: int) -> str:
    """"≈ 6.4 GB", "≈ 300 MB" (with no-break spaces: a size never wraps)."""
    text = f"≈ {size / 1e9:.1f} GB" if size >= 1e9 else f"≈ {size / 1e6:.0f} MB"
    return text.replace(" ", "\u00a0")


# A repository other than the default one is assumed to weigh what the default does.
PART_BYTES = {"model": engine.DOWNLOAD_BYTES[engine.DIA_REPO], "codec": engine.DOWNLOAD_BYTES[engine.DAC_REPO]}
SIZES = {key: size_text(size) for key, size in PART_BYTES.items()}
PARTS = (("model", opts.MODEL_PATH, engine.DIA_REPO, "The Dia model"),
         ("codec", opts.CODEC_PATH, engine.DAC_REPO, "The DAC audio codec"))


@dataclass(frozen=True)
class LocationStatus:
    """Whether a model location can be used without downloading."""

    ready: bool
    kind: str  # "folder" | "cached" | "missing_folder" | "not_downloaded"
    text: str
    repo: str = ""  # the repo id to download when ``kind == "not_downloaded"``


def is_repo_id(spec: str) -> bool:
    return spec.count("/") == 1 and not spec.startswith(("/", ".", "~", "\\")) and ":" not in spec


def location_status(spec: str, default_repo: str) -> LocationStatus:
    """Check a folder / weight file / repo id without loading anything."""
    spec = spec.strip() or default_repo
    path = Path(spec).expanduser()
    if path.exists():
        return LocationStatus(True, "folder", f"✓ Uses {path}")
    if not is_repo_id(spec):
        return LocationStatus(False, "missing_folder", f"✗ {path} does not exist")
    try:
        cached = engine.cached_snapshot(spec)
    except Exception as exc:  # noqa: BLE001 - a broken cache must not break the settings page
        log.warning("checking the Hugging Face cache for %s: %s", spec, exc)
        cached = None
    if cached is not None:
        return LocationStatus(True, "cached", f"✓ {spec} is downloaded", spec)
    return LocationStatus(False, "not_downloaded", f"✗ {spec} is not downloaded yet", spec)


def engine_options(settings: Settings) -> engine.EngineOptions:
    return engine.EngineOptions(
        model=settings.get(opts.MODEL_PATH).strip() or None,
        codec=settings.get(opts.CODEC_PATH).strip() or None,
        device=settings.get(opts.DEVICE) if settings.get(opts.DEVICE) in DEVICE_CHOICES else "auto",
        dtype=settings.get(opts.DTYPE) if settings.get(opts.DTYPE) in DTYPE_CHOICES else "auto",
        quantize=quantize_mode(settings) or None,
        offline=True if settings.get(opts.OFFLINE) else None)


def quantize_mode(settings: Settings) -> str:
    """The chosen weight mode ("" = exact); settings from before the mode list keep their int8 checkbox."""
    mode = settings.get(opts.QUANTIZE_MODE)
    if mode == "unset":
        return "int8" if settings.get(opts.QUANTIZE) else ""
    return mode if mode in engine.QUANTIZE_MODES else ""


def remote_target(settings: Settings) -> RemoteTarget | None:
    """The Dia Studio server renders go to, or None when they run on this computer."""
    if settings.get(RENDER_ON) != SERVER:
        return None
    return RemoteTarget(settings.get(SERVER_URL).strip(), settings.get(SERVER_TOKEN).strip())


def missing_model_message(settings: Settings) -> str:
    """"" when model and codec are usable (or renders run on a server); otherwise what is missing and how to
    get it."""
    if remote_target(settings) is not None:
        return ""
    problems = []
    for key, option, repo, what in PARTS:
        status = location_status(settings.get(option), repo)
        if status.ready:
            continue
        if status.kind == "missing_folder":
            problems.append(f"{what} folder {settings.get(option)} does not exist.")
        else:
            problems.append(f"{what} ({status.repo}, {SIZES[key]}) is not downloaded yet.")
    if not problems:
        return ""
    how = ("Offline mode is on: turn it off in Model settings to download, or choose folders that hold the files."
           if settings.get(opts.OFFLINE) else
           "Open Model settings to download it once (then Dia Studio works offline), or choose the folders that hold it.")
    return " ".join(problems) + " " + how


def downloads_needed(settings: Settings) -> list[tuple[str, LocationStatus]]:
    """The parts ("model"/"codec") that loading would download now; none when offline (then loading fails with a
    message instead)."""
    if settings.get(opts.OFFLINE) or engine.hub_offline() or remote_target(settings) is not None:
        return []
    found = [(key, location_status(settings.get(option), repo)) for key, option, repo, _what in PARTS]
    return [(key, status) for key, status in found if status.kind == "not_downloaded"]


def ask_before_download(parent: QWidget | None, settings: Settings) -> bool:
    """Before a render that would download the model: say what, how big and where, and offer Download, Folder…
    (choose folders that hold the files; saved in the settings) and Cancel. True when the render may go ahead."""
    missing = downloads_needed(settings)
    if not missing:
        return True
    total = size_text(sum(PART_BYTES[key] for key, _status in missing))
    box = QMessageBox(QMessageBox.Icon.Question, "Download the model?",
                      f"Rendering needs files that are not on this computer yet. Download them now ({total})?",
                      QMessageBox.StandardButton.NoButton, parent)
    box.setObjectName("download_question")
    box.setInformativeText(_download_details(missing))
    box.setStyleSheet("QLabel#qt_msgbox_label, QLabel#qt_msgbox_informativelabel { min-width: 460px; }")
    download = box.addButton(f"Download ({total})", QMessageBox.ButtonRole.AcceptRole)
    download.setObjectName("download_yes")
    folder = box.addButton("Folder…", QMessageBox.ButtonRole.ActionRole)
    folder.setObjectName("download_folder")
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    box.setEscapeButton(cancel)
    box.exec()
    if box.clickedButton() is download:
        return True
    if box.clickedButton() is folder:
        return _choose_folders(parent, settings, [key for key, _status in missing])
    return False


def _download_details(missing: list[tuple[str, LocationStatus]]) -> str:
    names = {key: what for key, _option, _repo, what in PARTS}
    lines = [f"• {names[key]}: {status.repo}, {SIZES[key]}" for key, status in missing]
    return ("\n".join(lines) + f"\n\nSaved in the Hugging Face cache:\n{engine.hub_cache_dir()}\n\nDownloaded once: "
            "after that Dia Studio works offline. Already have the files? Choose their folders with Folder…")


def _choose_folders(parent: QWidget | None, settings: Settings, keys: list[str]) -> bool:
    """Ask for the folder of each missing part; saved only when every one was chosen."""
    chosen = {}
    for key, option, repo, what in PARTS:
        if key not in keys:
            continue
        folder = QFileDialog.getExistingDirectory(parent, f"{what}: choose the folder that holds {repo}",
                                                  str(Path.home()))
        if not folder:
            return False
        chosen[option] = folder
    for option, folder in chosen.items():
        settings.set(option, folder)
    return True


def device_summary() -> str:
    try:
        report = engine.report()
    except Exception as exc:  # noqa: BLE001
        return f"Can't inspect the hardware: {exc}"
    cuda = f"CUDA: {report.cuda_name}" if report.cuda else "CUDA: not available"
    mps = "Apple MPS: available" if report.mps else "Apple MPS: not available"
    return (f"Detected — {cuda}; {mps}; CPU threads: {report.cpu_threads} ({report.cpu_kernels} kernels). "
            f"“auto” uses {report.chosen}.")


class _DownloadRelay(QObject):
    progress = Signal(object)  # engine.DownloadProgress


class ModelSettingsDialog(QDialog):
    """Edits the model options; downloads missing repositories with byte progress and cancel."""

    downloadFinished = Signal(bool)  # True when everything is downloaded

    def __init__(self, settings: Settings, tasks: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model settings")
        self.setObjectName("model_settings")
        self.settings = settings
        self.tasks = tasks
        self._stop = threading.Event()
        self.downloading = False
        self.last_error = None

        self.render_on = self._render_on_box()
        self.model_edit, model_row, self.model_status = self._location_row(
            "model", f"{engine.DIA_REPO} (default)", "Dia model: a folder, a weight file or a Hugging Face repo id")
        self.codec_edit, codec_row, self.codec_status = self._location_row(
            "codec", f"{engine.DAC_REPO} (default)", "DAC codec: a folder, weights.pth or a Hugging Face repo id")
        where = QGroupBox("Where the model is")
        form = QFormLayout(where)
        form.addRow("Dia model", model_row)
        form.addRow("Audio codec", codec_row)
        self.offline = QCheckBox("Offline mode: never download (use local folders and the Hugging Face cache only)")
        self.offline.setObjectName("offline_mode")
        form.addRow(self.offline)

        self.download_button = QPushButton("Download")
        self.download_button.setObjectName("download_button")
        self.download_button.setToolTip("Download what is missing into the Hugging Face cache (once; then it works offline)")
        self.cancel_download = QPushButton("Cancel download")
        self.cancel_download.setObjectName("cancel_download")
        self.cancel_download.hide()
        self.progress = QProgressBar()
        self.progress.setObjectName("download_progress")
        self.progress.setAccessibleName("Download progress")
        self.progress.hide()
        self.progress_label = QLabel("")
        self.progress_label.setObjectName("download_label")
        self.progress_label.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.download_button)
        row.addWidget(self.cancel_download)
        row.addWidget(self.progress, 1)
        form.addRow(row)
        form.addRow(self.progress_label)
        self.progress_label.hide()

        run = QGroupBox("How it runs")
        run_form = QFormLayout(run)
        self.device = QComboBox()
        self.device.setObjectName("device_combo")
        self.device.addItems(DEVICE_CHOICES)
        self.device.setToolTip("auto prefers an NVIDIA GPU (CUDA), then Apple silicon (MPS), then the CPU")
        self.dtype = QComboBox()
        self.dtype.setObjectName("dtype_combo")
        self.dtype.addItems(DTYPE_CHOICES)
        self.dtype.setToolTip("Precision of the model's weights: auto picks bfloat16 on CUDA and CPU, float32 on "
                              "Apple MPS. float32 is the most exact and needs the most memory.")
        self.quantize = QComboBox()
        self.quantize.setObjectName("quantize_combo")
        for mode in dict.fromkeys(m or "" for m in engine.QUANTIZE_MODES):
            label, tip = QUANTIZE_LABELS.get(mode, (mode, ""))
            self.quantize.addItem(label, mode)
            self.quantize.setItemData(self.quantize.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.detected = QLabel(device_summary())
        self.detected.setObjectName("device_detected")
        self.detected.setWordWrap(True)
        run_form.addRow("Device", self.device)
        run_form.addRow("", self.detected)
        run_form.addRow("Precision", self.dtype)
        run_form.addRow("Weights", self.quantize)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.buttons = buttons
        layout = QVBoxLayout(self)
        note = QLabel("Dia Studio runs Nari Labs' Dia-1.6B (English) with the Descript audio codec entirely on this "
                      "computer. The files are downloaded once from Hugging Face.")
        note.setWordWrap(True)
        layout.addWidget(note)
        layout.addWidget(self.render_on)
        layout.addWidget(where)
        layout.addWidget(run)
        layout.addWidget(buttons)
        self.local_groups = (where, run)

        self.download_button.clicked.connect(self.start_download)
        self.cancel_download.clicked.connect(self.stop_download)
        self.offline.toggled.connect(self.refresh_status)
        self.on_server.toggled.connect(self._show_render_on)
        self.load()
        self.resize(640, self.sizeHint().height())
        self._fit_to_contents()

    def _render_on_box(self) -> QGroupBox:
        """"Render on: This computer | A Dia Studio server" with the server's address and token."""
        box = QGroupBox("Render on")
        self.on_local = QRadioButton("This computer")
        self.on_local.setObjectName("render_on_local")
        self.on_server = QRadioButton("A Dia Studio server")
        self.on_server.setObjectName("render_on_server")
        self.on_server.setToolTip("A computer running dia-studio serve (or Dia Studio's Tools ▸ Local API server): "
                                  "renders and the voice library use it")
        self.server_url = QLineEdit()
        self.server_url.setObjectName("server_url")
        self.server_url.setPlaceholderText("http://192.168.1.20:8765")
        self.server_url.setAccessibleName("Server address")
        self.server_token = QLineEdit()
        self.server_token.setObjectName("server_token")
        self.server_token.setEchoMode(QLineEdit.EchoMode.Password)
        self.server_token.setPlaceholderText("the token the server printed")
        self.server_token.setAccessibleName("Server token")
        choice = QHBoxLayout()
        choice.addWidget(self.on_local)
        choice.addWidget(self.on_server)
        choice.addStretch(1)
        self.server_fields = QWidget()
        fields = QFormLayout(self.server_fields)
        fields.setContentsMargins(0, 0, 0, 0)
        fields.addRow("Address", self.server_url)
        fields.addRow("Token", self.server_token)
        column = QVBoxLayout(box)
        column.addLayout(choice)
        column.addWidget(self.server_fields)
        return box

    def _show_render_on(self, *_args) -> None:
        remote = self.on_server.isChecked()
        self.server_fields.setVisible(remote)
        for group in self.local_groups:
            group.setEnabled(not remote)
        if self.isVisible():
            self._fit_to_contents()

    def _location_row(self, key: str, placeholder: str, tip: str):
        edit = QLineEdit()
        edit.setObjectName(f"{key}_location")
        edit.setPlaceholderText(placeholder)
        edit.setToolTip(tip)
        edit.setAccessibleName(tip.split(":")[0])
        browse = QPushButton("Folder…")
        browse.setObjectName(f"{key}_browse")
        browse.setToolTip(f"Choose the folder that holds the {key}")
        browse.clicked.connect(lambda: self._browse(edit))
        status = QLabel("")
        status.setObjectName(f"{key}_status")
        status.setWordWrap(True)
        status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row = QHBoxLayout()
        row.addWidget(edit, 1)
        row.addWidget(browse)
        edit.textChanged.connect(self.refresh_status)
        holder = QWidget()
        column = QVBoxLayout(holder)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addLayout(row)
        column.addWidget(status)
        return edit, holder, status

    def _browse(self, edit: QLineEdit) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the folder", edit.text() or str(Path.home()))
        if folder:
            edit.setText(folder)

    # -- values

    def load(self) -> None:
        s = self.settings
        self.model_edit.setText(s.get(opts.MODEL_PATH))
        self.codec_edit.setText(s.get(opts.CODEC_PATH))
        self.device.setCurrentText(s.get(opts.DEVICE) if s.get(opts.DEVICE) in DEVICE_CHOICES else "auto")
        self.dtype.setCurrentText(s.get(opts.DTYPE) if s.get(opts.DTYPE) in DTYPE_CHOICES else "auto")
        self.quantize.setCurrentIndex(max(0, self.quantize.findData(quantize_mode(s))))
        self.offline.setChecked(s.get(opts.OFFLINE))
        (self.on_server if s.get(RENDER_ON) == SERVER else self.on_local).setChecked(True)
        self.server_url.setText(s.get(SERVER_URL))
        self.server_token.setText(s.get(SERVER_TOKEN))
        self._show_render_on()
        self.refresh_status()

    def save(self) -> None:
        s = self.settings
        s.set(opts.MODEL_PATH, self.model_edit.text().strip())
        s.set(opts.CODEC_PATH, self.codec_edit.text().strip())
        s.set(opts.DEVICE, self.device.currentText())
        s.set(opts.DTYPE, self.dtype.currentText())
        s.set(opts.QUANTIZE_MODE, self.quantize.currentData())
        s.set(opts.OFFLINE, self.offline.isChecked())
        s.set(RENDER_ON, SERVER if self.on_server.isChecked() else LOCAL)
        s.set(SERVER_URL, self.server_url.text().strip())
        s.set(SERVER_TOKEN, self.server_token.text().strip())

    def accept(self) -> None:
        if self.downloading:
            self.stop_download()
        self.save()
        super().accept()

    def reject(self) -> None:
        if self.downloading:
            self.stop_download()
        super().reject()

    def statuses(self) -> tuple[LocationStatus, LocationStatus]:
        return (location_status(self.model_edit.text(), engine.DIA_REPO),
                location_status(self.codec_edit.text(), engine.DAC_REPO))

    def refresh_status(self, *_args) -> None:
        model, codec = self.statuses()
        for label, status, key in ((self.model_status, model, "model"), (self.codec_status, codec, "codec")):
            text = status.text + (f" ({SIZES[key]})" if status.kind == "not_downloaded" else "")
            label.setText(text)
            label.setStyleSheet("" if status.ready else "color: #c0392b;")
        missing = [s for s in (model, codec) if s.kind == "not_downloaded"]
        self.download_button.setEnabled(bool(missing) and not self.offline.isChecked() and not self.downloading)
        if not missing:
            self.download_button.setToolTip("Everything is downloaded")
        if self.isVisible():
            self._fit_to_contents()

    # -- download

    def start_download(self) -> None:
        repos = [s.repo for s in self.statuses() if s.kind == "not_downloaded"]
        if not repos or self.downloading:
            return
        self.downloading = True
        self._stop = threading.Event()
        stop = self._stop
        relay = _DownloadRelay(self)
        relay.progress.connect(self._show_progress)
        self._relay = relay
        self.progress.setRange(0, 0)
        self.progress.show()
        self.progress_label.show()
        self.cancel_download.show()
        self.download_button.setEnabled(False)
        self.progress_label.setText(f"Starting the download of {', '.join(repos)}…")
        self._fit_to_contents()

        def work() -> list[str]:
            done = []
            for repo in repos:
                engine.download_repo(repo, progress=relay.progress.emit, should_stop=stop.is_set)
                done.append(repo)
            return done

        self.tasks.run(work, self._download_done, self._download_failed)

    def stop_download(self) -> None:
        self._stop.set()
        self.progress_label.setText("Cancelling…")
        self._fit_to_contents()

    def _show_progress(self, p: engine.DownloadProgress) -> None:
        if p.retry_in is not None:  # the Hub can't be reached (yet): say so, Cancel download stops the waiting
            self.progress.setRange(0, 0)
            self.progress_label.setText(p.text)
            self._fit_to_contents()
            return
        if p.file_total:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * p.file_bytes / max(1, p.file_total)))
            size = f"{p.file_bytes / 1e6:,.0f} of {p.file_total / 1e6:,.0f} MB"
        else:
            self.progress.setRange(0, 0)
            size = f"{p.file_bytes / 1e6:,.0f} MB"
        self.progress_label.setText(f"{p.filename}: {size} (file {p.files_done + 1} of {max(1, p.files_total)})")

    def _finish_download(self, text: str) -> None:
        self.downloading = False
        self.progress.hide()
        self.cancel_download.hide()
        self.progress_label.setText(text)
        self.refresh_status()
        self._fit_to_contents()

    # -- size

    def needed_height(self) -> int:
        """The height the contents need at the current width (wrapped labels grow taller as text arrives)."""
        # a label's new text reaches the group boxes' layouts through posted LayoutRequest events: apply them first
        QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
        layout = self.layout()
        layout.activate()
        if layout.hasHeightForWidth():
            return layout.totalHeightForWidth(self.width())
        return layout.totalMinimumSize().height()

    def _fit_to_contents(self) -> None:
        # Qt's minimum size for a dialog ignores height-for-width: without this, a long message squashed the rows.
        self.setMinimumHeight(self.needed_height())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self._fit_to_contents()

    def _download_done(self, repos: list[str]) -> None:
        self._finish_download(f"Downloaded {', '.join(repos)}. Dia Studio can now work offline.")
        self.downloadFinished.emit(True)

    def _download_failed(self, exc: BaseException) -> None:
        if isinstance(exc, engine.CancelledError):
            self._finish_download("Download cancelled. The files finished so far are kept.")
        else:
            self.last_error = describe(exc)
            self._finish_download(f"⚠ {self.last_error.title}: {self.last_error.message}")
        self.downloadFinished.emit(False)
