"""Tools ▸ Local API server: the engine's HTTP API (``engine.server``) served from inside the app.

The server runs in-process (uvicorn on a thread) and renders through the app's one render worker:
``AppBackend`` posts each API request to the ``RenderQueue`` as a job marked "via API" and waits for
it, so the API and the window share one model in memory, and API renders show in the Queue. The
server stores them in the app's history, labelled "via API" (``engine.server`` does that), and the
History reloads. Whether it runs, its port and "Allow other computers on my network" are kept in
the settings; a server that was running when the app quit starts again at the next launch.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

import engine
from app.errors import UserError, describe
from app.model_settings import engine_options
from app.render_controller import expected_steps
from app.settings import STT_MODEL, Option, Settings
from app.workers import API, PROGRESS_INTERVAL, RENDERING, RenderJob, RenderQueue, format_seconds

if TYPE_CHECKING:
    from engine.server import BackgroundServer

log = logging.getLogger(__name__)

LOOPBACK_HOST = "127.0.0.1"
ALL_HOSTS = "0.0.0.0"  # noqa: S104 - only when the user allows other computers, with the warning shown
POLL_SECONDS = 0.1
"""How often a waiting API render looks at whether its client left or the server is stopping."""
STOP_SECONDS = 10.0
"""How long stopping waits for uvicorn (renders in flight are cancelled first)."""
TITLE_PREFIX = "via API · "
LAN_WARNING = ("⚠ Other computers on your network can reach the server. Anyone with the token can render and "
               "change your voice library: keep the token secret.")


def _default_port() -> int:
    from engine.server import DEFAULT_PORT

    return DEFAULT_PORT


API_SERVER_ON = Option("api_server/running", False, bool)  # started at launch when it was running at quit
API_SERVER_PORT = Option("api_server/port", 0, int)  # 0: engine.server's default port
API_SERVER_LAN = Option("api_server/allow_network", False, bool)


class _Call:
    """One API render waiting on the render thread's answer (``workers.JobListener``)."""

    def __init__(self, on_audio: Callable[[engine.AudioChunk], None] | None) -> None:
        self.on_audio = on_audio
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def audio(self, chunk: engine.AudioChunk) -> None:
        if self.on_audio is not None and not self.done.is_set():
            self.on_audio(chunk)

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        if not self.done.is_set():
            self.result, self.error = result, error
            self.done.set()

    def outcome(self) -> Any:
        if self.error is None:
            return self.result
        if isinstance(self.error, engine.CancelledError):
            raise engine.DiaStudioError("The render was cancelled in Dia Studio.", code="cancelled")
        if isinstance(self.error, engine.DiaStudioError):
            raise self.error
        raise engine.GenerationError(describe(self.error).message)


class _StoppableEngine:
    """The app's engine as a long script's episode render sees it: each block's render also stops when
    the job is cancelled in the app's Queue (the render itself only knows the server's cancel, which
    follows the client)."""

    def __init__(self, dia: engine.DiaEngine, stopped: Callable[[], bool]) -> None:
        self._dia = dia
        self._stopped = stopped

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dia, name)

    def render(self, request: engine.RenderRequest, *, should_stop: Callable[[], bool] | None = None,
               **kwargs: Any) -> engine.RenderResult:
        def stop() -> bool:
            return self._stopped() or (should_stop is not None and should_stop())

        return self._dia.render(request, should_stop=stop, **kwargs)


def long_fraction(p: engine.EpisodeProgress) -> float:
    """How much of a long script is rendered, 0–1, by the blocks' estimated lengths."""
    if p.stage == "done":
        return 1.0
    if p.eta_seconds is not None and p.elapsed + p.eta_seconds > 0:
        # the episode engine's time left is elapsed × (estimate left / estimate done): this is done / all
        return p.elapsed / (p.elapsed + p.eta_seconds)
    return p.blocks_done / max(1, p.blocks_total)


def long_detail(p: engine.EpisodeProgress, fraction: float) -> str:
    """What the Queue says of a long script: which block, how far, the time left."""
    block = f"Block {min(p.blocks_done + 1, p.blocks_total)} of {p.blocks_total}"
    if p.stage == "prompt":
        return f"{block} · encoding the voice prompt…"
    left = f" · ≈ {format_seconds(p.eta_seconds)} left" if p.eta_seconds is not None else ""
    return f"{block} · {fraction:.0%}{left}"


class AppBackend(QObject):
    """``engine.server``'s ``RenderBackend`` (and ``EngineRunner``) for the app: every request is a job
    on the app's render queue, rendered by its one engine. Lives in the GUI thread; ``render`` and
    ``with_engine`` are called from the server's queue thread."""

    _post = Signal(object)  # RenderJob, to queue on the GUI thread
    _cancel = Signal(int)
    _progress = Signal(object, object)  # RenderJob, engine.EpisodeProgress (a long script's)

    def __init__(self, queue: RenderQueue, settings: Settings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.queue = queue
        self.settings = settings
        self.closed = threading.Event()
        self._model_id, self._precision = self._current_model()
        self._post.connect(self._submit, Qt.ConnectionType.QueuedConnection)
        self._cancel.connect(queue.cancel, Qt.ConnectionType.QueuedConnection)
        self._progress.connect(self._show_progress, Qt.ConnectionType.QueuedConnection)

    def _current_model(self) -> tuple[str, str]:
        """The id and precision of the model the settings name now."""
        from engine.server import model_id_for, precision_for

        options = engine_options(self.settings)
        return model_id_for(options), precision_for(options)

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def precision(self) -> str:
        return self._precision

    def close(self) -> None:
        """Cancel the renders in flight and refuse new ones (the server is stopping)."""
        self.closed.set()

    def render(self, request: engine.RenderRequest, *, on_audio: Callable[[engine.AudioChunk], None] | None,
               should_stop: Callable[[], bool]) -> engine.RenderResult:
        prompt = request.voice.duration if request.voice is not None else 0.0
        budget = engine.estimate_budget(request.script, prompt_seconds=prompt,
                                        max_new_tokens=request.params.max_new_tokens)
        call = _Call(on_audio)
        job = RenderJob(script=request.script, params=request.params, options=engine.EngineOptions(),
                        title=TITLE_PREFIX + engine.make_title(request.script), expected_steps=expected_steps(budget),
                        origin=API, request=request, listener=call)
        return self._wait(job, call, should_stop)

    def with_engine(self, work: Callable[[engine.DiaEngine, Callable[[engine.EpisodeProgress], None]], Any]) -> Any:
        """Run ``work`` with the app's engine, as one job (a long script through the episode engine)
        whose Queue row shows the blocks' progress; cancelling the job in the Queue stops it like a
        client that went away."""
        call = _Call(None)
        job = RenderJob(script="", params=engine.GenerationParams(), options=engine.EngineOptions(),
                        title=TITLE_PREFIX + "a long script, block by block", origin=API, listener=call)
        report = self._reporter(job)
        job.work = lambda dia, _progress, _audio, stop: work(_StoppableEngine(dia, stop), report)
        return self._wait(job, call, lambda: False)

    def _reporter(self, job: RenderJob) -> Callable[[engine.EpisodeProgress], None]:
        """On the render thread: pass ``job``'s progress to the GUI thread, at most every
        ``PROGRESS_INTERVAL`` while a block generates (every other stage always)."""
        last = [0.0]

        def report(p: engine.EpisodeProgress) -> None:
            now = time.monotonic()
            if p.stage != "generate" or now - last[0] >= PROGRESS_INTERVAL:
                last[0] = now
                self._progress.emit(job, p)

        return report

    @Slot(object, object)
    def _show_progress(self, job: RenderJob, p: engine.EpisodeProgress) -> None:
        """On the GUI thread: a long script's progress in its Queue row (never backwards)."""
        if job.state != RENDERING or job.stop.is_set():
            return
        job.fraction = max(job.fraction, min(1.0, long_fraction(p)))
        job.detail = long_detail(p, job.fraction)
        self.queue.jobChanged.emit(job)

    def _wait(self, job: RenderJob, call: _Call, should_stop: Callable[[], bool]) -> Any:
        if self.closed.is_set():
            raise engine.GenerationError("Dia Studio's API server is stopping.")
        self._post.emit(job)
        while not call.done.wait(POLL_SECONDS):
            gone, closing = should_stop(), self.closed.is_set()
            if gone or closing:  # don't wait for the render thread: the GUI may be the one stopping us
                job.stop.set()
                self._cancel.emit(job.id)
                if gone:
                    raise engine.CancelledError("the client went away")
                raise engine.GenerationError("Dia Studio's API server is stopping.")
        return call.outcome()

    @Slot(object)
    def _submit(self, job: RenderJob) -> None:
        """On the GUI thread: queue ``job`` with the model settings of now."""
        job.options = engine_options(self.settings)
        self._model_id, self._precision = self._current_model()
        if job.stop.is_set() or self.closed.is_set():
            job.listener.finish(error=engine.CancelledError("cancelled before it was queued"))
            return
        try:
            self.queue.submit(job)
        except RuntimeError:  # the queue is shut down: the app is closing
            job.listener.finish(error=engine.GenerationError("Dia Studio is closing."))


class NotifyingHistory:
    """The app's ``RenderHistory`` for the server: the same store, and ``changed`` is called after
    the server adds, labels or deletes a take (so the History tab reloads)."""

    def __init__(self, history: engine.RenderHistory, changed: Callable[[], None]) -> None:
        self._history = history
        self._changed = changed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._history, name)

    def add(self, **kwargs) -> engine.HistoryEntry:
        entry = self._history.add(**kwargs)
        self._changed()
        return entry

    def set_label(self, entry_id: int, label: str) -> engine.HistoryEntry:
        entry = self._history.set_label(entry_id, label)
        self._changed()
        return entry

    def delete(self, entry_id: int) -> None:
        self._history.delete(entry_id)
        self._changed()


class ApiServer(QObject):
    """Starts and stops the in-process API server; the dialog and the main window follow ``stateChanged``."""

    stateChanged = Signal(bool)  # running
    historyChanged = Signal()  # the server stored, labelled or deleted a take
    errorRaised = Signal(object)  # UserError

    def __init__(self, queue: RenderQueue, settings: Settings, library: Callable[[], engine.VoiceLibrary | None],
                 history: Callable[[], engine.RenderHistory | None], parent: QObject | None = None) -> None:
        """``library`` and ``history``: the app's stores on this computer (the server serves those)."""
        super().__init__(parent)
        self.queue = queue
        self.settings = settings
        self._library = library
        self._history = history
        self.backend: AppBackend | None = None
        self._server: BackgroundServer | None = None
        self._sock: socket.socket | None = None
        self.token = ""
        self.host = LOOPBACK_HOST
        self.port = 0

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.running

    @property
    def url(self) -> str:
        """The API's address as a client on this computer (or, when shared, on the network) writes it."""
        if not self.running:
            return ""
        host = socket.gethostname() if self.host == ALL_HOSTS else self.host
        return f"http://{host}:{self.port}/v1"

    def saved_port(self) -> int:
        return self.settings.get(API_SERVER_PORT) or _default_port()

    def start(self, port: int | None = None, allow_network: bool | None = None) -> bool:
        """Start serving (the saved port and choice unless given); False with ``errorRaised`` if it can't."""
        if self.running:
            return True
        port = self.saved_port() if port is None else port
        lan = self.settings.get(API_SERVER_LAN) if allow_network is None else allow_network
        try:
            self._serve(port, lan)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message
            self.errorRaised.emit(_start_error(exc))
            return False
        self.settings.set(API_SERVER_PORT, port)
        self.settings.set(API_SERVER_LAN, lan)
        self.settings.set(API_SERVER_ON, True)
        self.stateChanged.emit(True)
        return True

    def _serve(self, port: int, lan: bool) -> None:
        from engine.server import BackgroundServer, ServerConfig, bind_socket, create_app, resolve_token

        library, history = self._library(), self._history()
        if library is None or history is None:
            raise engine.StorageError("the voice library or the history can't be opened, and the API serves both")
        token, _source = resolve_token(None)
        host = ALL_HOSTS if lan else LOOPBACK_HOST
        config = ServerConfig(token=token, host=host, port=port, allow_remote=lan)
        sock = bind_socket(host, port)
        backend = AppBackend(self.queue, self.settings, self)
        try:
            app = create_app(config, backend, library=library,
                             transcriber=engine.optional_transcriber(self.settings.get(STT_MODEL)),
                             history=NotifyingHistory(history, self.historyChanged.emit))  # type: ignore[arg-type]
            server = BackgroundServer(app, sock, name="dia-api-server", stop_timeout=STOP_SECONDS, log_config=None,
                                      log_level="warning", access_log=False, server_header=False,
                                      timeout_graceful_shutdown=int(STOP_SECONDS))
            server.start()
        except BaseException:
            sock.close()
            backend.deleteLater()
            raise
        self.backend, self._server, self._sock = backend, server, sock
        self.token, self.host, self.port = token, host, sock.getsockname()[1]
        log.info("API server listening on %s:%d", host, self.port)  # never the token

    def stop(self, *, remember: bool = True) -> None:
        """Stop serving (cancelling API renders in flight). ``remember=False`` (quitting) keeps it
        marked as running, so the next launch starts it again."""
        if remember:
            self.settings.set(API_SERVER_ON, False)
        if self._server is None:
            return
        self.backend.close()
        if not self._server.stop():
            log.error("the API server did not stop within %.0f s", STOP_SECONDS)
        self._sock.close()
        self.backend.deleteLater()
        self._server = self._sock = self.backend = None
        self.stateChanged.emit(False)

    def restore(self) -> None:
        """At launch: start again if it was running when the app last quit."""
        if self.settings.get(API_SERVER_ON):
            self.start()


def _start_error(exc: BaseException) -> UserError:
    error = describe(exc)
    return UserError("The API server can't start", error.message, error.hint, error.code)


class ApiServerDialog(QDialog):
    """Tools ▸ Local API server: start/stop, port, "Allow other computers on my network", the URL and token."""

    def __init__(self, server: ApiServer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Local API server")
        self.setObjectName("api_server_dialog")
        self.server = server
        self.last_error: UserError | None = None

        intro = QLabel("Other programs on this computer (scripts, Open WebUI, OpenAI's SDKs) can render with Dia "
                       "through the API. Its renders use this window's model, wait in the Queue and are kept in "
                       "the History, marked “via API”.")
        intro.setWordWrap(True)
        self.status = QLabel()
        self.status.setObjectName("api_status")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.port = QSpinBox()
        self.port.setObjectName("api_port")
        self.port.setRange(1024, 65535)
        self.port.setValue(server.saved_port())
        self.port.setAccessibleName("Port")
        self.lan = QCheckBox("Allow other computers on my network")
        self.lan.setObjectName("api_allow_network")
        self.lan.setChecked(server.settings.get(API_SERVER_LAN))
        self.warning = QLabel(LAN_WARNING)
        self.warning.setObjectName("api_network_warning")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #b9770e;")
        self.url = QLineEdit()
        self.url.setObjectName("api_url")
        self.url.setReadOnly(True)
        self.url.setAccessibleName("Server address")
        self.token = QLineEdit()
        self.token.setObjectName("api_token")
        self.token.setReadOnly(True)
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setAccessibleName("Token")
        self.copy_token = QPushButton("Copy token")
        self.copy_token.setObjectName("api_copy_token")
        self.copy_token.setToolTip("Copy the token to the clipboard: clients send it as “Authorization: Bearer …”")
        self.toggle = QPushButton()
        self.toggle.setObjectName("api_start_stop")
        self.message = QLabel()
        self.message.setObjectName("api_message")
        self.message.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Status", self.status)
        form.addRow("Port", self.port)
        form.addRow("", self.lan)
        form.addRow("", self.warning)
        form.addRow("Address", self.url)
        token_row = QHBoxLayout()
        token_row.addWidget(self.token, 1)
        token_row.addWidget(self.copy_token)
        form.addRow("Token", token_row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.addButton(self.toggle, QDialogButtonBox.ButtonRole.ActionRole)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(buttons)

        self.toggle.clicked.connect(self.start_or_stop)
        self.copy_token.clicked.connect(self.copy)
        self.lan.toggled.connect(self.refresh)
        server.stateChanged.connect(self.refresh)
        server.errorRaised.connect(self._failed)
        self.resize(620, self.sizeHint().height())
        self.refresh()

    def refresh(self, *_args) -> None:
        running = self.server.running
        self.toggle.setText("Stop" if running else "Start")
        self.port.setEnabled(not running)
        self.lan.setEnabled(not running)
        self.warning.setVisible(self.lan.isChecked())
        self.url.setText(self.server.url)
        self.token.setText(self.server.token if running else "")
        self.copy_token.setEnabled(running)
        if running:
            where = "other computers on your network too" if self.server.host == ALL_HOSTS else "this computer only"
            self.status.setText(f"Running on port {self.server.port} ({where})")
        else:
            self.status.setText("Stopped")
        self._fit()

    def _fit(self) -> None:
        """Tall enough for the wrapped texts at this width (a dialog's minimum ignores height-for-width)."""
        QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
        layout = self.layout()
        layout.activate()
        needed = (layout.totalHeightForWidth(self.width()) if layout.hasHeightForWidth()
                  else layout.totalMinimumSize().height())
        self.setMinimumHeight(needed)
        if self.height() < needed:
            self.resize(self.width(), needed)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self._fit()

    def start_or_stop(self) -> None:
        self.message.setText("")
        if self.server.running:
            self.server.stop()
        else:
            self.server.start(self.port.value(), self.lan.isChecked())

    def copy(self) -> None:
        if self.server.token:
            QApplication.clipboard().setText(self.server.token)
            self.message.setText("Token copied to the clipboard.")

    def _failed(self, error: UserError) -> None:
        self.last_error = error
        self.message.setText(f"⚠ {error.title}: {error.message}")
        self._fit()
