"""Downloads against a local HTTP server on 127.0.0.1: retry, resume, refusal."""

from __future__ import annotations

import hashlib
import http.server
import threading
import time

import pytest

from hetmtl.data.archives import ArchiveError
from hetmtl.data.download import http_download
from hetmtl.data.fetch import fetch

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    log: list = []
    drops: dict = {}
    watch = None  # a path whose existence is recorded at every request
    seen: list = []

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        Handler.log.append((self.path, self.headers.get("Range")))
        if Handler.watch is not None:
            Handler.seen.append(Handler.watch.exists())
        kind = self.path.strip("/").split("/")[0]
        if kind == "missing":
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and kind != "norange":
            start = int(rng.split("=")[1].split("-")[0])
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if kind in ("drop", "norange") and Handler.drops.get(self.path, 0) == 0:
            Handler.drops[self.path] = 1
            self.wfile.write(body[: len(body) // 3])  # then the connection dies mid-file
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(autouse=True)
def fresh_log():
    Handler.log.clear()
    Handler.drops.clear()
    Handler.seen.clear()
    Handler.watch = None


def test_plain_download_is_verified_and_moved_into_place(server, tmp_path):
    dest = http_download(f"{server}/full/a.zip", tmp_path / "a.zip", MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD and not (tmp_path / "a.zip.part").exists()


def test_dropped_connection_resumes_with_a_range_request(server, tmp_path):
    dest = http_download(f"{server}/drop/a.zip", tmp_path / "a.zip", MD5, backoff=0.01, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert Handler.log[0][1] is None
    offset = int(Handler.log[1][1].removeprefix("bytes=").rstrip("-"))
    assert 0 < offset <= len(PAYLOAD) // 3  # continued from what arrived, not restarted


def test_partial_download_never_sits_at_the_final_path(server, tmp_path):
    Handler.watch = tmp_path / "a.zip"
    http_download(f"{server}/drop/a.zip", tmp_path / "a.zip", MD5, backoff=0.01, progress=False)
    assert Handler.seen == [False, False]  # while resuming, only a.zip.part held the bytes


def test_server_without_ranges_restarts_from_zero(server, tmp_path):
    dest = http_download(f"{server}/norange/a.zip", tmp_path / "a.zip", MD5, backoff=0.01, progress=False)
    assert dest.read_bytes() == PAYLOAD and len(Handler.log) == 2


def test_wrong_md5_leaves_nothing_behind(server, tmp_path):
    with pytest.raises(ArchiveError, match=f"expected {'0' * 32}, actual {MD5}"):
        http_download(f"{server}/full/a.zip", tmp_path / "a.zip", "0" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_missing_file_and_unreachable_host_fail_fast(server, tmp_path):
    started = time.time()
    with pytest.raises(ArchiveError, match="HTTPError"):
        http_download(f"{server}/missing/a.zip", tmp_path / "a.zip", MD5, progress=False)
    with pytest.raises(ArchiveError, match="download failed"):
        http_download("http://127.0.0.1:9/a.zip", tmp_path / "a.zip", MD5, progress=False)
    assert time.time() - started < 5 and list(tmp_path.iterdir()) == []


def test_fetch_falls_through_dead_mirrors(server, project, params):
    suite = dict(params.suite("paper"), raw_dir="raw")
    source = dict(params["sources"]["coil20_unproc"], md5=MD5,
                  urls=["http://127.0.0.1:9/coil-20-unproc.zip", f"{server}/missing/x", f"{server}/drop/coil.zip"])
    path = fetch(suite, "coil20_unproc", source)
    assert path.read_bytes() == PAYLOAD
    assert (project / "raw" / "coil-20-unproc.zip.md5").read_text().split()[0] == MD5
