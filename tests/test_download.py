"""Downloads against a local HTTP server on 127.0.0.1: retry, resume, refusal."""

from __future__ import annotations

import hashlib
import http.server
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from hetmtl.data import download
from hetmtl.data.archives import ArchiveError
from hetmtl.data.download import HtmlPageError, confirmation_url, http_download
from hetmtl.data.fetch import fetch

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
MD5 = hashlib.md5(PAYLOAD).hexdigest()
DRIVE_ID, KEY = "0B81rNlvomiwed0V1YUxQdC1uOTg", "0-2SNWq0CDAuWOBRRBL7ZZsw"
# Google Drive's answer to a large file today (its form, trimmed): the real download
# goes to the form's action with its hidden inputs
CONFIRM_PAGE = f"""<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>
<p>Google Drive can't scan this file for viruses.</p>
<form id="download-form" action="/download" method="get">
<input type="submit" value="Download anyway"/>
<input type="hidden" name="id" value="{DRIVE_ID}"><input type="hidden" name="export" value="download">
<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="7a1b-22">
</form></body></html>"""


class Handler(http.server.BaseHTTPRequestHandler):
    log: list = []
    sent_headers: list = []
    drive_style = "form"
    drops: dict = {}
    watch = None  # a path whose existence is recorded at every request
    seen: list = []

    def log_message(self, *args):  # keep the test output clean
        pass

    def _page(self, status: int, text: str, cookie: str | None = None):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if cookie:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        Handler.log.append((self.path, self.headers.get("Range")))
        Handler.sent_headers.append(dict(self.headers))
        if Handler.watch is not None:
            Handler.seen.append(Handler.watch.exists())
        kind = urlsplit(self.path).path.strip("/").split("/")[0]
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        if kind == "missing":
            self.send_error(404)
            return
        if kind == "forbidden":  # the Surrey server's robot blocker
            self._page(403, "<html><body>Access denied: are you a robot?</body></html>")
            return
        if kind == "page":  # a login page with status 200
            self._page(200, "<!DOCTYPE html><html><head><title>Sign in</title></head><body>login</body></html>")
            return
        if kind == "redirect":
            self.send_response(302)
            self.send_header("Location", "/full/moved.zip")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if kind == "uc":  # Google Drive: a file shared before 2021 needs its resource key
            if query.get("resourcekey") != KEY or query.get("id") != DRIVE_ID:
                self._page(404, "<html><body>Sorry, the file you have requested does not exist.</body></html>")
                return
            if Handler.drive_style == "cookie" and query.get("confirm") != "tok42":
                self._page(200, "<html><body>Google Drive can't scan this file for viruses.</body></html>",
                           cookie="download_warning_123=tok42; Path=/")
                return
            if Handler.drive_style == "form":
                self._page(200, CONFIRM_PAGE)
                return
        if kind == "download" and query.get("confirm") not in ("t", "tok42"):
            self._page(200, CONFIRM_PAGE)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and kind not in ("norange", "truncated"):
            start = int(rng.split("=")[1].split("-")[0])
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if kind == "truncated":  # promises the whole file, sends half, every time
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
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
    Handler.sent_headers.clear()
    Handler.drive_style = "form"
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
    source = dict(params["alternative_sources"]["coil20_unproc"], md5=MD5,
                  urls=["http://127.0.0.1:9/coil-20-unproc.zip", f"{server}/missing/x", f"{server}/drop/coil.zip"])
    path = fetch(suite, "coil20_unproc", source)
    assert path.read_bytes() == PAYLOAD
    assert (project / "raw" / "coil-20-unproc.zip.md5").read_text().split()[0] == MD5


# --------------------------------------------------------------------------- what real servers answer today


def test_google_drive_with_resource_key_and_confirmation_page(server, tmp_path, monkeypatch):
    """Drive's "can't scan for viruses" page is followed to the file, with the
    resource key sent as parameter and header; without the key Drive has no such file."""
    monkeypatch.setattr(download, "DRIVE_URL", f"{server}/uc")
    dest = http_download(f"gdrive://{DRIVE_ID}?resourcekey={KEY}", tmp_path / "oh.zip", MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD
    paths = [urlsplit(p).path for p, _ in Handler.log]
    assert paths == ["/uc", "/download"]  # the page, then the form's action
    assert parse_qs(urlsplit(Handler.log[1][0]).query)["uuid"] == ["7a1b-22"]
    assert Handler.sent_headers[0]["X-Goog-Drive-Resource-Keys"] == f"{DRIVE_ID}/{KEY}"
    with pytest.raises(ArchiveError, match="HTTPError: 404"):
        http_download(f"gdrive://{DRIVE_ID}", tmp_path / "oh.zip", MD5, progress=False)
    assert not (tmp_path / "oh.zip.part").exists()


def test_google_drive_older_cookie_confirmation(server, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "DRIVE_URL", f"{server}/uc")
    Handler.drive_style = "cookie"
    dest = http_download(f"gdrive://{DRIVE_ID}?resourcekey={KEY}", tmp_path / "oh.zip", MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert parse_qs(urlsplit(Handler.log[-1][0]).query)["confirm"] == ["tok42"]


def test_confirmation_url_reads_the_form_the_link_or_the_cookie():
    base = "https://drive.google.com/uc?export=download&id=X"
    assert confirmation_url(CONFIRM_PAGE, base, {}, KEY) == (
        f"https://drive.google.com/download?id={DRIVE_ID}&export=download&confirm=t&uuid=7a1b-22&resourcekey={KEY}")
    link = '<a id="uc-download-link" href="/uc?export=download&amp;confirm=AbC&amp;id=X">Download anyway</a>'
    assert confirmation_url(link, base, {}) == "https://drive.google.com/uc?export=download&confirm=AbC&id=X"
    assert confirmation_url("<html>quota exceeded</html>", base, {"download_warning_1": "Q"}).endswith("confirm=Q")
    assert confirmation_url("<html>Sign in</html>", base, {}) is None


@pytest.mark.parametrize("kind, status", [("forbidden", 403), ("page", 200)])
def test_a_web_page_instead_of_the_archive_is_named_as_such(server, tmp_path, kind, status):
    """A 403 robot check, a login page with status 200: said so, with the path to
    place the file at, not an MD5 mismatch on a page saved as an archive."""
    dest = tmp_path / "EnglishHnd.tgz"
    with pytest.raises(HtmlPageError) as err:
        http_download(f"{server}/{kind}/EnglishHnd.tgz", dest, MD5, progress=False)
    msg = str(err.value)
    assert f"the server returned an HTML page (HTTP {status}" in msg
    assert msg.endswith(f"place the file by hand at {dest.resolve()}") and len(msg.splitlines()) == 1
    assert list(tmp_path.iterdir()) == [] and len(Handler.log) == 1


def test_a_truncated_file_is_retried_then_refused(server, tmp_path):
    with pytest.raises(ArchiveError, match="download failed .*truncated: the server closed the connection"):
        http_download(f"{server}/truncated/a.zip", tmp_path / "a.zip", MD5, attempts=3, backoff=0.01, progress=False)
    assert len(Handler.log) == 3 and list(tmp_path.iterdir()) == []


def test_a_redirect_is_followed(server, tmp_path):
    dest = http_download(f"{server}/redirect/a.zip", tmp_path / "a.zip", MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD and [urlsplit(p).path for p, _ in Handler.log] == ["/redirect/a.zip",
                                                                                          "/full/moved.zip"]


def test_fetch_tries_every_mirror_in_order_and_names_each_failure(server, project, params, monkeypatch, capsys):
    """Each mirror of params/ in turn, each kind of failure named; the Drive
    mirror after them delivers."""
    monkeypatch.setattr(download, "DRIVE_URL", f"{server}/uc")
    monkeypatch.setattr(download.time, "sleep", lambda s: None)  # the retries' backoff
    suite = dict(params.suite("paper"), raw_dir="raw")
    urls = [f"{server}/forbidden/oh.zip", f"{server}/page/oh.zip", f"{server}/truncated/oh.zip",
            f"gdrive://{DRIVE_ID}?resourcekey={KEY}"]
    source = dict(params["sources"]["officehome"], md5=MD5, urls=urls)
    path = fetch(suite, "officehome", source)
    assert path.read_bytes() == PAYLOAD
    err = capsys.readouterr().err
    assert [f"mirror {i}/4: {u}" in err for i, u in enumerate(urls, 1)] == [True] * 4
    source["urls"] = urls[:3]
    path.unlink()
    with pytest.raises(ArchiveError) as exc:
        fetch(suite, "officehome", source)
    msg = str(exc.value)
    assert "HTTP 403" in msg and "HTTP 200" in msg and "truncated" in msg
    assert f"place it at {path.resolve()}" in msg


def test_an_archive_labelled_text_html_is_still_an_archive():
    from hetmtl.data.download import looks_like_html

    assert not looks_like_html(b"\x1f\x8b\x08\x00", "text/html; charset=iso-8859-1")
    assert not looks_like_html(b"PK\x03\x04rest", "text/html")
    assert looks_like_html(b"  <!DOCTYPE html><html>", "application/octet-stream")
    assert looks_like_html(b"Access denied", "text/html")
