"""Model resolution (engine.model.hub): folders, the Hugging Face cache, and downloads from a fake hub.

No mocks of our own code:

* the cache tests build a real Hugging Face cache layout by hand
  (``models--org--name/{blobs,refs/main,snapshots/<commit>}``) and call the real lookup;
* the download tests start a small threaded HTTP server on 127.0.0.1 that answers the
  ``{endpoint}/{repo}/resolve/{revision}/{file}`` requests ``huggingface_hub.hf_hub_download``
  makes (HEAD for the metadata: ``X-Repo-Commit``, ``ETag``/``X-Linked-Etag``, sizes, a
  redirect to a second "CDN" server for LFS files; then GET), and run ``resolve_model`` in a
  subprocess, because ``huggingface_hub.constants`` reads ``HF_HUB_OFFLINE``/``HF_ENDPOINT``/
  ``HF_HOME`` once, at import time (and ``tests/conftest.py`` turns offline mode on for the suite).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from engine.errors import ModelNotFoundError
from engine.model.hub import DIA_REPO, RETRY_DELAYS_S, cached_snapshot, hub_offline, resolve_model

ROOT = Path(__file__).resolve().parents[2]

SHARDED_REPO = DIA_REPO  # "nari-labs/Dia-1.6B-0626": config + index + 2 shards (+ the same weights twice more)
SINGLE_REPO = "descript/dac_44khz-test"  # config + model.safetensors
COMMIT = "0626aa" + "0" * 34
SINGLE_COMMIT = "dac044" + "1" * 34
SHARDS = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
SHARDED_NEEDED = ["config.json", "model.safetensors.index.json", *SHARDS]
SINGLE_NEEDED = ["config.json", "model.safetensors"]
CHUNK = 64 * 1024  # huggingface_hub reads 10 MiB chunks; the driver shrinks them so small files arrive in pieces


def _payload(tag: str, size: int) -> bytes:
    block = hashlib.sha256(tag.encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def sharded_files() -> dict[str, bytes]:
    index = {"metadata": {"total_size": 350_001},
             "weight_map": {"encoder.embedding.weight": SHARDS[0], "encoder.layers.0.weight": SHARDS[0],
                            "decoder.layers.0.weight": SHARDS[1], "decoder.logits_dense.weight": SHARDS[1]}}
    return {
        "config.json": json.dumps({"model": {"encoder": {"n_layer": 12}}, "version": "0626"}).encode(),
        "model.safetensors.index.json": json.dumps(index).encode(),
        SHARDS[0]: _payload("shard1", 200_000),
        SHARDS[1]: _payload("shard2", 150_001),
        # the real repo also stores the weights as a single file, a torch pickle and the original checkpoint
        "model.safetensors": _payload("single", 90_000),
        "pytorch_model.bin": _payload("bin", 80_000),
        "dia-v1.pth": _payload("pth", 70_000),
        "README.md": b"# Dia\n",
    }


def single_files() -> dict[str, bytes]:
    return {
        "config.json": json.dumps({"sample_rate": 44100}).encode(),
        "model.safetensors": _payload("dac", 130_000),
        "weights_44khz_8kbps_0.0.1.pth": _payload("dacpth", 60_000),
    }


# --------------------------------------------------------------------------------------------
# 1. A Hugging Face cache built by hand, offline
# --------------------------------------------------------------------------------------------

def git_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def make_cached_repo(cache: Path, repo_id: str, files: dict[str, bytes], *, commit: str = COMMIT,
                     no_exist: tuple[str, ...] = (), symlinks: bool = True) -> Path:
    """Lay ``files`` out the way ``hf_hub_download`` does; returns the snapshot folder."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    for name, data in files.items():
        blob = repo / "blobs" / (hashlib.sha256(data).hexdigest() if name.endswith(".safetensors") else git_sha(data))
        blob.write_bytes(data)
        target = snapshot / name
        if symlinks:
            target.symlink_to(os.path.relpath(blob, target.parent))
        else:
            target.write_bytes(data)
    for name in no_exist:
        marker = repo / ".no_exist" / commit / name
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    return snapshot


def needed(files: dict[str, bytes], names: list[str]) -> dict[str, bytes]:
    return {name: files[name] for name in names}


@pytest.mark.parametrize("symlinks", [True, False], ids=["symlinked-blobs", "copied-files"])
def test_complete_sharded_repo_is_found_offline(tmp_path, symlinks):
    snapshot = make_cached_repo(tmp_path, SHARDED_REPO, needed(sharded_files(), SHARDED_NEEDED), symlinks=symlinks)
    assert cached_snapshot(SHARDED_REPO, cache_dir=tmp_path) == snapshot
    assert resolve_model(SHARDED_REPO, offline=True, cache_dir=tmp_path) == snapshot
    # None and "" name the default repository
    assert resolve_model(None, default_repo=SHARDED_REPO, offline=True, cache_dir=tmp_path) == snapshot
    assert resolve_model("  ", default_repo=SHARDED_REPO, offline=True, cache_dir=tmp_path) == snapshot


def test_complete_single_file_repo_is_found_offline(tmp_path):
    snapshot = make_cached_repo(tmp_path, SINGLE_REPO, needed(single_files(), SINGLE_NEEDED), commit=SINGLE_COMMIT,
                                no_exist=("model.safetensors.index.json",))
    assert cached_snapshot(SINGLE_REPO, cache_dir=tmp_path) == snapshot
    assert resolve_model(SINGLE_REPO, offline=True, cache_dir=tmp_path) == snapshot


def test_single_file_repo_without_no_exist_marker_is_found(tmp_path):
    snapshot = make_cached_repo(tmp_path, SINGLE_REPO, needed(single_files(), SINGLE_NEEDED), commit=SINGLE_COMMIT)
    assert cached_snapshot(SINGLE_REPO, cache_dir=tmp_path) == snapshot


@pytest.mark.parametrize("missing", SHARDED_NEEDED)
def test_sharded_repo_missing_any_file_is_not_found(tmp_path, missing):
    files = needed(sharded_files(), [n for n in SHARDED_NEEDED if n != missing])
    make_cached_repo(tmp_path, SHARDED_REPO, files)
    assert cached_snapshot(SHARDED_REPO, cache_dir=tmp_path) is None
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(SHARDED_REPO, offline=True, cache_dir=tmp_path)
    message = str(err.value)
    assert SHARDED_REPO in message and "offline mode is on" in message
    assert f"dia-studio download {SHARDED_REPO}" in message and "folder" in message
    assert err.value.code == "model_not_found"


@pytest.mark.parametrize("missing", SINGLE_NEEDED)
def test_single_file_repo_missing_a_file_is_not_found(tmp_path, missing):
    files = needed(single_files(), [n for n in SINGLE_NEEDED if n != missing])
    make_cached_repo(tmp_path, SINGLE_REPO, files, commit=SINGLE_COMMIT, no_exist=("model.safetensors.index.json",))
    assert cached_snapshot(SINGLE_REPO, cache_dir=tmp_path) is None
    with pytest.raises(ModelNotFoundError, match="offline mode is on"):
        resolve_model(SINGLE_REPO, offline=True, cache_dir=tmp_path)


def test_dangling_blob_symlink_counts_as_missing(tmp_path):
    files = needed(sharded_files(), SHARDED_NEEDED)
    snapshot = make_cached_repo(tmp_path, SHARDED_REPO, files)
    (snapshot / SHARDS[1]).resolve().unlink()  # the blob went away (cleaned cache), the link stayed
    assert (snapshot / SHARDS[1]).is_symlink()
    assert cached_snapshot(SHARDED_REPO, cache_dir=tmp_path) is None


def test_snapshot_of_another_commit_than_main_is_ignored(tmp_path):
    files = needed(sharded_files(), SHARDED_NEEDED)
    make_cached_repo(tmp_path, SHARDED_REPO, files, commit="b" * 40)
    (tmp_path / "models--nari-labs--Dia-1.6B-0626" / "refs" / "main").write_text(COMMIT)  # main moved on
    assert cached_snapshot(SHARDED_REPO, cache_dir=tmp_path) is None


def test_empty_cache_offline(tmp_path):
    assert cached_snapshot(SHARDED_REPO, cache_dir=tmp_path) is None
    with pytest.raises(ModelNotFoundError, match="offline mode is on"):
        resolve_model(SHARDED_REPO, offline=True, cache_dir=tmp_path / "does-not-exist")


def index_naming(*shards) -> bytes:
    """A ``model.safetensors.index.json`` whose weight map names ``shards``."""
    return json.dumps({"metadata": {}, "weight_map": {f"layer{i}.weight": s for i, s in enumerate(shards)}}).encode()


# Shard names an index must not use: outside the repository, absolute, Windows tricks, not safetensors.
UNSAFE_SHARDS = ["../../evil.safetensors", "sub/../../evil.safetensors", "/etc/evil.safetensors",
                 "//server/share/evil.safetensors", "C:/evil.safetensors", "C:evil.safetensors",
                 "..\\..\\evil.safetensors", "sub\\evil.safetensors", "./evil.safetensors", "sub//evil.safetensors",
                 "evil\x00.safetensors", "evil.safetensors:stream.safetensors", "model-00001.bin", "evil", "", 7, None]


@pytest.mark.parametrize("shard", UNSAFE_SHARDS)
def test_a_cached_index_naming_an_unsafe_shard_is_refused(tmp_path, shard):
    files = {**needed(sharded_files(), SHARDED_NEEDED), "model.safetensors.index.json": index_naming(SHARDS[0], shard)}
    make_cached_repo(tmp_path, SHARDED_REPO, files)
    with pytest.raises(ModelNotFoundError) as err:
        cached_snapshot(SHARDED_REPO, cache_dir=tmp_path)
    message = str(err.value)
    assert err.value.code == "model_not_found"
    assert SHARDED_REPO in message and "model.safetensors.index.json" in message and repr(shard) in message


def test_resolving_a_cached_repo_with_an_unsafe_shard_says_so_not_that_it_is_missing(tmp_path):
    files = {**needed(sharded_files(), SHARDED_NEEDED),
             "model.safetensors.index.json": index_naming("../../evil.safetensors")}
    make_cached_repo(tmp_path, SHARDED_REPO, files)
    with pytest.raises(ModelNotFoundError, match="not a relative path inside the repository") as err:
        resolve_model(SHARDED_REPO, offline=True, cache_dir=tmp_path)
    assert "offline mode" not in str(err.value)


def test_shards_in_a_subfolder_of_the_repository_are_accepted(tmp_path):
    nested = "weights/model-00001-of-00001.safetensors"
    snapshot = make_cached_repo(tmp_path, SHARDED_REPO, needed(sharded_files(), ["config.json"]))
    make_cached_repo(tmp_path, SHARDED_REPO, {"model.safetensors.index.json": index_naming(nested)})
    (snapshot / "weights").mkdir()
    make_cached_repo(tmp_path, SHARDED_REPO, {nested: _payload("nested", 1000)})
    assert cached_snapshot(SHARDED_REPO, cache_dir=tmp_path) == snapshot


@pytest.mark.parametrize("index, problem", [(b"{not json", "not valid JSON"), (b"[]", "without a weight_map"),
                                            (b'{"weight_map": ["a.safetensors"]}', "without a weight_map")])
def test_a_corrupt_cached_index_is_refused(tmp_path, index, problem):
    files = {**needed(sharded_files(), SHARDED_NEEDED), "model.safetensors.index.json": index}
    make_cached_repo(tmp_path, SHARDED_REPO, files)
    with pytest.raises(ModelNotFoundError, match=problem):
        cached_snapshot(SHARDED_REPO, cache_dir=tmp_path)


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), (" YES ", True), ("on", True),
                                             ("0", False), ("", False), ("false", False), ("off", False)])
def test_hub_offline_reads_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert hub_offline() is expected


def test_offline_follows_the_environment_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="offline mode is on"):
        resolve_model(SHARDED_REPO, cache_dir=tmp_path)


def test_existing_paths_are_returned_as_they_are(tmp_path, monkeypatch):
    folder = tmp_path / "my-model"
    folder.mkdir()
    weights = folder / "model.safetensors"
    weights.write_bytes(b"x")
    for spec in (folder, str(folder), weights, str(weights)):
        assert resolve_model(spec, offline=False, cache_dir=tmp_path / "cache") == Path(spec)
    # a relative "org/name" that exists as a folder wins over the repository of that name
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nari-labs" / "Dia-1.6B-0626").mkdir(parents=True)
    assert resolve_model(SHARDED_REPO, offline=True, cache_dir=tmp_path / "cache") == Path(SHARDED_REPO)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_model("~/my-model", offline=True) == folder


MISSING_PATHS = ["./no-such-model", "../no/such/model", "/no/such/model", "~/no-such-model-folder", "no-such-model",
                 "models/nari-labs/Dia-1.6B-0626", "C:\\models\\dia", "\\\\server\\share\\dia"]


@pytest.mark.parametrize("spec", MISSING_PATHS)
def test_missing_path_like_spec_is_not_a_repository(tmp_path, spec):
    cache = tmp_path / "cache"
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(spec, offline=False, cache_dir=cache)
    assert "does not exist" in str(err.value) and "offline" not in str(err.value)
    assert not cache.exists()  # never looked up or downloaded


def test_missing_pathlike_object_is_never_a_repository(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model(Path(SHARDED_REPO), offline=False, cache_dir=tmp_path / "cache")


# --------------------------------------------------------------------------------------------
# 2. Downloads from a fake hub on 127.0.0.1
# --------------------------------------------------------------------------------------------

@dataclass
class FakeRepo:
    files: dict[str, bytes]
    commit: str
    lfs_suffixes: tuple[str, ...] = (".safetensors", ".bin", ".pth")

    def is_lfs(self, name: str) -> bool:
        return name.endswith(self.lfs_suffixes)


@dataclass
class FakeHub:
    """The state shared by the hub server and its "CDN" server, and the log of every request."""

    repos: dict[str, FakeRepo] = field(default_factory=dict)
    failures: dict[tuple[str, str], int] = field(default_factory=dict)  # (method, filename) -> status
    truncate: set[str] = field(default_factory=set)  # files whose GET closes the connection mid-body
    missing_repo_status: int = 404
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (method, repo_id, filename)
    lock: threading.Lock = field(default_factory=threading.Lock)
    hub_url: str = ""
    cdn_url: str = ""

    def blob(self, sha: str) -> tuple[str, str, bytes] | None:
        for repo_id, repo in self.repos.items():
            for name, data in repo.files.items():
                if hashlib.sha256(data).hexdigest() == sha:
                    return repo_id, name, data
        return None

    def log(self, method: str, repo_id: str, name: str) -> None:
        with self.lock:
            self.requests.append((method, repo_id, name))

    def take_requests(self) -> list[tuple[str, str, str]]:
        with self.lock:
            taken, self.requests[:] = list(self.requests), []
        return taken


def _handler(hub: FakeHub, role: str):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_HEAD(self):
            self._serve(body=False)

        def do_GET(self):
            self._serve(body=True)

        def _reply(self, status: int, headers: dict[str, str], data: bytes = b"", body: bool = False) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body and data:
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client cancelled
                    pass

        def _serve(self, body: bool) -> None:
            parts = [unquote(p) for p in urlsplit(self.path).path.split("/")]
            if role == "cdn":
                found = hub.blob(parts[-1]) if len(parts) == 3 and parts[1] == "cdn" else None
                if found is None:
                    return self._reply(404, {}, b"no such blob", body)
                repo_id, name, data = found
                hub.log(f"{self.command} cdn", repo_id, name)
                status = hub.failures.get((f"{self.command} cdn", name))
                if status:
                    return self._reply(status, {}, b"boom", body)
                if body and name in hub.truncate:  # announce the whole file, send a little, hang up
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[:1000])
                    self.close_connection = True
                    return None
                return self._reply(200, {"Content-Type": "application/octet-stream",
                                         "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}, data, body)

            # /{org}/{name}/resolve/{revision}/{filename...}
            if len(parts) < 6 or parts[3] != "resolve":
                hub.log(self.command, "?", self.path)
                return self._reply(404, {}, b"not found", body)
            repo_id, revision, name = f"{parts[1]}/{parts[2]}", parts[4], "/".join(parts[5:])
            hub.log(self.command, repo_id, name)
            status = hub.failures.get((self.command, name))
            if status:
                return self._reply(status, {"Content-Type": "text/plain"}, b"Internal Server Error", body)
            repo = hub.repos.get(repo_id)
            if repo is None or revision not in ("main", repo.commit):
                return self._reply(hub.missing_repo_status, {
                    "X-Error-Code": "RepoNotFound",
                    "X-Error-Message": "Repository not found"}, b"", body)
            data = repo.files.get(name)
            if data is None:
                return self._reply(404, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found",
                                         "X-Repo-Commit": repo.commit}, b"", body)
            common = {"X-Repo-Commit": repo.commit, "ETag": f'"{git_sha(data)}"', "Accept-Ranges": "bytes"}
            if repo.is_lfs(name):
                sha = hashlib.sha256(data).hexdigest()
                return self._reply(302, {**common, "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data)),
                                         "Location": f"{hub.cdn_url}/cdn/{sha}"}, b"", body)
            return self._reply(200, {**common, "Content-Type": "application/json"}, data, body)

    return Handler


@pytest.fixture
def fake_hub():
    hub = FakeHub()
    servers = []
    for role in ("hub", "cdn"):  # two ports: the CDN is another origin, as on the real Hub
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub, role))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
    hub.hub_url = f"http://127.0.0.1:{servers[0].server_address[1]}"
    hub.cdn_url = f"http://127.0.0.1:{servers[1].server_address[1]}"
    hub.repos[SHARDED_REPO] = FakeRepo(sharded_files(), COMMIT)
    hub.repos[SINGLE_REPO] = FakeRepo(single_files(), SINGLE_COMMIT)
    yield hub
    for server in servers:
        server.shutdown()
        server.server_close()


DRIVER = r"""
import json, sys, time

args = json.loads(sys.argv[1])
import huggingface_hub.constants as hf_constants
hf_constants.DOWNLOAD_CHUNK_SIZE = args["chunk"]
if args.get("no_backoff_wait"):
    # huggingface_hub retries 5xx/unreachable HEADs 5 times, sleeping 1+2+4+8+8 s, and broken downloads 5 times,
    # sleeping 1 s: keep the retries, skip the waits
    import huggingface_hub.file_download as hf_download
    import huggingface_hub.utils._http as hf_http

    class _NoWait:
        def __getattr__(self, name):
            return getattr(time, name)

        @staticmethod
        def sleep(seconds):
            pass

    hf_http.time = hf_download.time = _NoWait()

from engine.errors import DiaStudioError
from engine.model.hub import resolve_model

events, retries = [], []
stop_after = args.get("stop_after")
stop_at_retry = args.get("stop_at_retry")


def progress(p):
    if p.retry_in is not None:
        retries.append([p.filename, p.retry_in, p.retry, p.retries, p.problem, p.text])
    else:
        events.append([p.filename, p.file_bytes, p.file_total, p.files_done, p.files_total])


def should_stop():
    if stop_at_retry is not None and len(retries) >= stop_at_retry:
        return True
    return stop_after is not None and any(e[0] == stop_after and e[1] > 0 for e in events)


try:
    path = resolve_model(args["spec"], offline=args.get("offline"), progress=progress, should_stop=should_stop)
    result, code = {"ok": True, "path": str(path)}, 0
except DiaStudioError as exc:
    result, code = {"ok": False, "type": type(exc).__name__, "code": exc.code, "message": str(exc)}, 3
result["events"] = events
result["retries"] = retries
print("RESULT " + json.dumps(result))
sys.exit(code)
"""


@dataclass
class Run:
    returncode: int
    result: dict
    stderr: str
    requests: list[tuple[str, str, str]]


def run_resolve(hub: FakeHub, hf_home: Path, spec: str, *, offline_env: bool = False, offline: bool | None = None,
                stop_after: str | None = None, no_backoff_wait: bool = False, endpoint: str | None = None,
                stop_at_retry: int | None = None) -> Run:
    """``resolve_model(spec, ...)`` in a fresh interpreter pointed at the fake hub."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGINGFACE_")) and k.lower() not in
           {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}}
    env.update({
        "HF_HUB_OFFLINE": "1" if offline_env else "0",
        "HF_ENDPOINT": endpoint or hub.hub_url,
        "HF_HOME": str(hf_home),
        "HF_HUB_DISABLE_XET": "1",  # plain HTTP downloads only
        "HF_HUB_DISABLE_TELEMETRY": "1",  # no /api/agent-harnesses request, no torch import for the user agent
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_ETAG_TIMEOUT": "5",
        "HF_HUB_DOWNLOAD_TIMEOUT": "5",
        "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONPATH": str(ROOT),
    })
    hf_home.mkdir(parents=True, exist_ok=True)
    hub.take_requests()
    args = {"spec": spec, "offline": offline, "chunk": CHUNK, "stop_after": stop_after,
            "no_backoff_wait": no_backoff_wait, "stop_at_retry": stop_at_retry}
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(args)], cwd=hf_home, env=env,
                          capture_output=True, text=True, timeout=60)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"driver crashed (exit {proc.returncode}):\n{proc.stderr}"
    return Run(proc.returncode, json.loads(lines[-1][len("RESULT "):]), proc.stderr, hub.take_requests())


def files_requested(run: Run, repo_id: str) -> set[str]:
    return {name for _method, repo, name in run.requests if repo == repo_id}


def repo_cache(hf_home: Path, repo_id: str) -> Path:
    return hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))


def check_progress(events: list, files: dict[str, bytes], order: list[str], downloaded: list[str]) -> None:
    by_file: dict[str, list] = {}
    for name, done, total, files_done, files_total in events:
        by_file.setdefault(name, []).append((done, total, files_done, files_total))
    assert list(by_file) == downloaded  # one file after the other, in order
    names = [e[0] for e in events]
    assert names == sorted(names, key=downloaded.index)  # no interleaving
    for name, seen in by_file.items():
        counts = [done for done, *_ in seen]
        assert all(b > a for a, b in zip(counts, counts[1:])), (name, counts)
        assert counts[-1] == len(files[name]), name
        assert {total for _, total, _, _ in seen} == {len(files[name])}, name
        if len(files[name]) > CHUNK:
            assert len(seen) >= 2, f"{name} should arrive in several chunks"
    for name in set(by_file) & set(order[2:]):  # the weights: the file list is known by then
        assert {(fd, ft) for _, _, fd, ft in by_file[name]} == {(order.index(name), len(order))}, name


def test_download_sharded_repo(fake_hub, tmp_path):
    files = fake_hub.repos[SHARDED_REPO].files
    run = run_resolve(fake_hub, tmp_path, SHARDED_REPO)
    assert run.returncode == 0, run.result
    snapshot = repo_cache(tmp_path, SHARDED_REPO) / "snapshots" / COMMIT
    assert Path(run.result["path"]) == snapshot
    # the cache layout hf_hub_download builds
    repo = repo_cache(tmp_path, SHARDED_REPO)
    assert (repo / "refs" / "main").read_text() == COMMIT
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(SHARDED_NEEDED)
    for name in SHARDED_NEEDED:
        assert (snapshot / name).is_symlink() and (snapshot / name).read_bytes() == files[name]
    blobs = {p.name for p in (repo / "blobs").iterdir()}
    assert blobs == {hashlib.sha256(files[n]).hexdigest() for n in SHARDS} | \
        {git_sha(files[n]) for n in SHARDED_NEEDED[:2]}
    # only what loading needs was asked for: not the other copies of the weights
    assert files_requested(run, SHARDED_REPO) == set(SHARDED_NEEDED)
    assert {m for m, _r, n in run.requests if n in SHARDS} == {"HEAD", "GET cdn"}
    gets = [n for m, _r, n in run.requests if m.startswith("GET")]
    assert sorted(gets) == sorted(SHARDED_NEEDED)  # each file fetched once
    check_progress(run.result["events"], files, SHARDED_NEEDED, SHARDED_NEEDED)
    # the cache lookup agrees (in this process, against the same folder)
    assert cached_snapshot(SHARDED_REPO, cache_dir=tmp_path / "hub") == snapshot

    # later: offline, the cache answers, the hub is not asked
    again = run_resolve(fake_hub, tmp_path, SHARDED_REPO, offline_env=True)
    assert again.returncode == 0 and Path(again.result["path"]) == snapshot
    assert again.requests == [] and again.result["events"] == []
    # online too: a complete cached snapshot is used without asking the hub
    online = run_resolve(fake_hub, tmp_path, SHARDED_REPO)
    assert online.returncode == 0 and Path(online.result["path"]) == snapshot
    assert online.requests == []


def test_download_single_file_repo(fake_hub, tmp_path):
    files = fake_hub.repos[SINGLE_REPO].files
    run = run_resolve(fake_hub, tmp_path, SINGLE_REPO)
    assert run.returncode == 0, run.result
    snapshot = repo_cache(tmp_path, SINGLE_REPO) / "snapshots" / SINGLE_COMMIT
    assert Path(run.result["path"]) == snapshot
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(SINGLE_NEEDED)
    assert (snapshot / "model.safetensors").read_bytes() == files["model.safetensors"]
    # the index was looked for (HEAD, 404 EntryNotFound, remembered in .no_exist), the .pth never
    assert files_requested(run, SINGLE_REPO) == {*SINGLE_NEEDED, "model.safetensors.index.json"}
    assert ("GET", SINGLE_REPO, "model.safetensors.index.json") not in run.requests
    assert (repo_cache(tmp_path, SINGLE_REPO) / ".no_exist" / SINGLE_COMMIT / "model.safetensors.index.json").exists()
    check_progress(run.result["events"], files, SINGLE_NEEDED, SINGLE_NEEDED)
    events = run.result["events"]
    assert {(e[3], e[4]) for e in events if e[0] == "model.safetensors"} == {(1, 2)}

    again = run_resolve(fake_hub, tmp_path, SINGLE_REPO, offline_env=True)
    assert again.returncode == 0 and Path(again.result["path"]) == snapshot and again.requests == []


def test_cancel_mid_file_then_resume(fake_hub, tmp_path):
    files = fake_hub.repos[SHARDED_REPO].files
    run = run_resolve(fake_hub, tmp_path, SHARDED_REPO, stop_after=SHARDS[0])
    assert run.returncode == 3, run.stderr
    assert run.result["type"] == "CancelledError" and run.result["code"] == "cancelled"
    assert SHARDS[0] in run.result["message"] and "cancelled" in run.result["message"]
    shard_events = [e for e in run.result["events"] if e[0] == SHARDS[0]]
    assert 0 < shard_events[-1][1] < len(files[SHARDS[0]])  # it stopped mid-file
    assert not any(e[0] == SHARDS[1] for e in run.result["events"])
    # nothing incomplete is left where a loader could find it
    repo = repo_cache(tmp_path, SHARDED_REPO)
    snapshot = repo / "snapshots" / COMMIT
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "model.safetensors.index.json"]
    assert not [p for p in (repo / "blobs").iterdir() if p.name.endswith(".incomplete")]
    assert hashlib.sha256(files[SHARDS[0]]).hexdigest() not in {p.name for p in (repo / "blobs").iterdir()}
    assert cached_snapshot(SHARDED_REPO, cache_dir=tmp_path / "hub") is None
    offline = run_resolve(fake_hub, tmp_path, SHARDED_REPO, offline_env=True)
    assert offline.returncode == 3 and offline.result["type"] == "ModelNotFoundError" and offline.requests == []

    # the next attempt downloads only what is missing
    resumed = run_resolve(fake_hub, tmp_path, SHARDED_REPO)
    assert resumed.returncode == 0, resumed.result
    assert Path(resumed.result["path"]) == snapshot
    assert sorted(n for m, _r, n in resumed.requests if m.startswith("GET")) == sorted(SHARDS)
    check_progress(resumed.result["events"], files, SHARDED_NEEDED, SHARDS)
    assert (snapshot / SHARDS[0]).read_bytes() == files[SHARDS[0]]


@pytest.mark.parametrize("status", [404, 401])  # the Hub answers 401 RepoNotFound when not logged in
def test_unknown_repository(fake_hub, tmp_path, status):
    fake_hub.missing_repo_status = status
    run = run_resolve(fake_hub, tmp_path, "nari-labs/No-Such-Model")
    assert run.returncode == 3
    assert run.result["type"] == "ModelNotFoundError" and run.result["code"] == "model_not_found"
    assert "nari-labs/No-Such-Model" in run.result["message"] and "does not exist" in run.result["message"]
    assert files_requested(run, "nari-labs/No-Such-Model") == {"config.json"}


def test_repository_without_config(fake_hub, tmp_path):
    fake_hub.repos["someone/not-a-model"] = FakeRepo({"README.md": b"hi", "data.csv": b"a,b\n"}, "c" * 40)
    run = run_resolve(fake_hub, tmp_path, "someone/not-a-model")
    assert run.returncode == 3 and run.result["type"] == "ModelNotFoundError"
    assert "has no config.json" in run.result["message"]


def test_sharded_repo_missing_a_shard(fake_hub, tmp_path):
    del fake_hub.repos[SHARDED_REPO].files[SHARDS[1]]
    run = run_resolve(fake_hub, tmp_path, SHARDED_REPO)
    assert run.returncode == 3 and run.result["type"] == "ModelNotFoundError"
    assert SHARDS[1] in run.result["message"]


def test_a_downloaded_index_naming_a_shard_outside_the_repository_is_refused_before_fetching_it(fake_hub, tmp_path):
    fake_hub.repos[SHARDED_REPO].files["model.safetensors.index.json"] = index_naming(SHARDS[0],
                                                                                      "../../../evil.safetensors")
    run = run_resolve(fake_hub, tmp_path, SHARDED_REPO)
    assert run.returncode == 3 and run.result["type"] == "ModelNotFoundError", run.result
    assert "'../../../evil.safetensors'" in run.result["message"]
    assert "not a relative path inside the repository" in run.result["message"]
    assert files_requested(run, SHARDED_REPO) == {"config.json", "model.safetensors.index.json"}  # no shard asked for
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub"]  # nothing written beside the cache


def test_server_error_on_metadata(fake_hub, tmp_path):
    fake_hub.failures[("HEAD", "config.json")] = 500
    run = run_resolve(fake_hub, tmp_path, SHARDED_REPO, no_backoff_wait=True)
    assert run.returncode == 3, run.stderr
    assert run.result["type"] == "DownloadError" and run.result["code"] == "download_failed", run.result
    message = run.result["message"]
    assert "config.json" in message and SHARDED_REPO in message and "HTTP 500" in message and "\n" not in message
    assert sum(1 for m, _r, n in run.requests if m == "HEAD" and n == "config.json") >= 2  # huggingface_hub retried
    assert not repo_cache(tmp_path, SHARDED_REPO).joinpath("snapshots").exists()
    assert "Retry" not in run.stderr and "thrown while requesting" not in run.stderr  # no raw library lines


def test_server_error_retries_are_reported_with_their_delay(fake_hub, tmp_path):
    fake_hub.failures[("HEAD", "config.json")] = 500
    run = run_resolve(fake_hub, tmp_path, SHARDED_REPO, no_backoff_wait=True)
    retries = run.result["retries"]
    assert retries, run.result
    assert [(r[2], r[3]) for r in retries] == [(i, len(retries)) for i in range(1, len(retries) + 1)]
    assert all(r[0] == "config.json" and r[1] > 0 for r in retries)
    assert [r[1] for r in retries] == sorted(r[1] for r in retries)  # backing off
    first_text = retries[0][5]
    assert "HTTP 500" in first_text and f"retrying in {retries[0][1]:.0f} s" in first_text


def test_cancel_stops_the_hub_retries(fake_hub, tmp_path):
    fake_hub.failures[("HEAD", "config.json")] = 500
    run = run_resolve(fake_hub, tmp_path, SHARDED_REPO, no_backoff_wait=True, stop_at_retry=1)
    assert run.returncode == 3 and run.result["type"] == "CancelledError", run.result
    assert len(run.result["retries"]) == 1
    full = run_resolve(fake_hub, tmp_path, SHARDED_REPO, no_backoff_wait=True)
    heads = [sum(1 for m, _r, n in r.requests if m == "HEAD" and n == "config.json") for r in (run, full)]
    assert heads[0] < heads[1]  # it stopped retrying: fewer requests than a run that retries to the end


def test_server_error_while_downloading_a_shard(fake_hub, tmp_path):
    fake_hub.failures[("GET cdn", SHARDS[1])] = 500
    run = run_resolve(fake_hub, tmp_path, SHARDED_REPO)
    assert run.returncode == 3, run.stderr
    assert run.result["type"] == "DownloadError" and run.result["code"] == "download_failed"
    message = run.result["message"]
    assert SHARDS[1] in message and SHARDED_REPO in message and "HTTP 500" in message and "\n" not in message
    snapshot = repo_cache(tmp_path, SHARDED_REPO) / "snapshots" / COMMIT
    assert SHARDS[1] not in {p.name for p in snapshot.iterdir()}


def test_connection_lost_while_downloading_a_shard(fake_hub, tmp_path):
    fake_hub.truncate.add(SHARDS[1])
    run = run_resolve(fake_hub, tmp_path, SHARDED_REPO, no_backoff_wait=True)
    assert run.returncode == 3, run.stderr  # a typed error, not a raw httpx traceback
    assert run.result["type"] == "DownloadError", run.result
    message = run.result["message"]
    assert SHARDS[1] in message and SHARDED_REPO in message and "\n" not in message
    assert sum(1 for m, _r, n in run.requests if m == "GET cdn" and n == SHARDS[1]) >= 2  # huggingface_hub resumed
    resumes = run.result["retries"]
    assert resumes and all(r[0] == SHARDS[1] and "broke off: retrying in 1 s" in r[5] for r in resumes), resumes
    snapshot = repo_cache(tmp_path, SHARDED_REPO) / "snapshots" / COMMIT
    assert SHARDS[1] not in {p.name for p in snapshot.iterdir()}
    assert not [p for p in snapshot.parent.parent.joinpath("blobs").iterdir() if p.name.endswith(".incomplete")]


def test_hub_unreachable(fake_hub, tmp_path):
    with socket_bound_but_closed() as port:
        run = run_resolve(fake_hub, tmp_path, SHARDED_REPO, endpoint=f"http://127.0.0.1:{port}",
                          no_backoff_wait=True)
    assert run.returncode == 3, run.stderr
    assert run.result["type"] == "DownloadError", run.result
    message = run.result["message"]
    assert "config.json" in message and SHARDED_REPO in message
    assert "could not be reached" in message and "network" in message and "connection refused" in message
    assert [r[1] for r in run.result["retries"]] == list(RETRY_DELAYS_S)  # each retry was reported before waiting
    assert "Retry" not in run.stderr and "Traceback" not in run.stderr


def test_offline_environment_wins_over_offline_false(fake_hub, tmp_path):
    run = run_resolve(fake_hub, tmp_path, SHARDED_REPO, offline_env=True, offline=False)
    assert run.returncode == 3
    assert run.result["type"] == "ModelNotFoundError" and "offline" in run.result["message"], run.result
    assert run.requests == []


def test_path_like_specs_never_reach_the_hub(fake_hub, tmp_path):
    for spec in ("./nari-labs/Dia-1.6B-0626", "nari-labs/Dia-1.6B-0626/", "Dia-1.6B-0626"):
        run = run_resolve(fake_hub, tmp_path, spec, offline=False)
        assert run.returncode == 3 and run.result["type"] == "ModelNotFoundError", (spec, run.result)
        assert "does not exist" in run.result["message"]
        assert run.requests == [], spec


class socket_bound_but_closed:
    """A loopback port nobody listens on (bound then released)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def __exit__(self, *exc) -> None:
        return None
