"""HTTP and Google Drive downloads that survive dead mirrors and dropped connections.

pooch and torchvision's download helpers restart a broken transfer from zero;
the real archives are up to 2 GB on slow academic servers, so this module adds
what they lack, on top of ``requests``: an HTTP Range request continues a
partial file when the server allows it (206), and starts over when it does not
(200). Bytes go to ``<dest>.part`` and the file is moved into place only after
its MD5 matches, so a failed or partial download never sits at the final path.
Connection errors are retried with backoff; an unreachable host fails within
seconds (short connect timeout), so an offline machine hears about every
missing archive quickly.

Google Drive (``gdrive://<id>?resourcekey=<key>`` in params/): our own requests,
because gdown drops the resource key that files shared before 2021 need
(wkentaro/gdown PR #281, closed unmerged). The key goes both as the
``resourcekey`` query parameter and as the ``X-Goog-Drive-Resource-Keys``
header; a large file first answers with a "can't scan this file for viruses"
confirmation page, whose form (or, on older pages, ``confirm=`` link or
``download_warning`` cookie) gives the real download URL (:func:`confirmation_url`).

A server that answers with a web page instead of the archive (a 401/403, a
login or a robot check, a page with status 200) is named as such, with the path
to place the file at by hand (:class:`HtmlPageError`), instead of an MD5
mismatch on a page saved as an archive.
"""

from __future__ import annotations

import html
import os
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import requests
from tqdm import tqdm

from hetmtl.data.archives import ArchiveError, md5sum

CHUNK = 1 << 16
# Google Drive's download endpoint (a module attribute: the tests point it at 127.0.0.1)
DRIVE_URL = "https://drive.google.com/uc"
# how many confirmation pages one download follows before it gives up
MAX_CONFIRMATIONS = 3
# the start of an HTML document (a page where an archive was expected)
_HTML_START = (b"<!doctype html", b"<html", b"<head", b"<!--")


class HtmlPageError(ArchiveError):
    """The server sent a web page (a 403, a login, a robot check) instead of the archive."""


def html_page_error(url: str, status: int, dest: Path) -> HtmlPageError:
    return HtmlPageError(f"{url}: the server returned an HTML page (HTTP {status}: a 403 / login / robot check) "
                         f"instead of the archive: place the file by hand at {Path(dest).resolve()}")


def drive_request(url: str) -> tuple[str, dict]:
    """The HTTP URL and headers of a ``gdrive://<id>[?resourcekey=<key>]`` mirror."""
    parts = urlsplit(url)
    file_id = parts.netloc + parts.path
    key = parse_qs(parts.query).get("resourcekey", [None])[0]
    query = {"export": "download", "id": file_id, **({"resourcekey": key} if key else {})}
    headers = {"X-Goog-Drive-Resource-Keys": f"{file_id}/{key}"} if key else {}
    return f"{DRIVE_URL}?{urlencode(query)}", headers


# the first bytes of the archives' formats (gzip, zip, bzip2, xz): an archive whatever its Content-Type says
_ARCHIVE_MAGIC = (b"\x1f\x8b", b"PK\x03\x04", b"BZh", b"\xfd7zXZ")


def looks_like_html(first: bytes, content_type: str) -> bool:
    """A web page: its first bytes say so, or its Content-Type does and its
    first bytes are no archive's (a server may label an archive text/html)."""
    if first.startswith(_ARCHIVE_MAGIC):
        return False
    return "text/html" in content_type.lower() or first.lstrip()[:16].lower().startswith(_HTML_START)


def confirmation_url(page: str, page_url: str, cookies: dict, resource_key: str | None = None) -> str | None:
    """The download URL a Google Drive confirmation page points to, or None when
    the page is no such page (a login, a quota or robot page, an error).

    Today's page: a form ``id="download-form"`` whose ``action`` and hidden
    inputs (``id``, ``export``, ``confirm``, ``uuid``) make the URL. Older pages:
    a link with ``confirm=<token>``, or a ``download_warning`` cookie that holds
    the token."""
    form = re.search(r'<form[^>]*id="download-form"[^>]*action="([^"]+)"[^>]*>(.*?)</form>', page, re.S) or \
        re.search(r'<form[^>]*action="([^"]+)"[^>]*id="download-form"[^>]*>(.*?)</form>', page, re.S)
    if form:
        fields = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form.group(2)))
        if resource_key and "resourcekey" not in fields:
            fields["resourcekey"] = resource_key
        return urljoin(page_url, html.unescape(form.group(1))) + "?" + urlencode(fields)
    link = re.search(r'href="([^"]*confirm=[^"]+)"', page)
    if link:
        return urljoin(page_url, html.unescape(link.group(1)))
    token = next((v for k, v in cookies.items() if k.startswith("download_warning")), None)
    if token:
        split = urlsplit(page_url)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        return split._replace(query=urlencode({**query, "confirm": token})).geturl()
    return None


def http_download(url: str, dest: Path, md5: str, attempts: int = 4, connect_timeout: float = 4.0,
                  read_timeout: float = 60.0, backoff: float = 0.5, progress: bool = True) -> Path:
    """Download ``url`` (http(s) or ``gdrive://``) to ``dest`` (resuming
    ``dest.part``), verify ``md5``, move into place."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    headers: dict = {}
    resource_key = None
    current = url
    if url.startswith("gdrive://"):
        current, headers = drive_request(url)
        resource_key = parse_qs(urlsplit(url).query).get("resourcekey", [None])[0]
    session = requests.Session()  # Drive's confirmation may ride on a cookie
    last_error: Exception | None = None
    confirmations = 0
    attempt = 0
    try:
        while attempt < attempts:
            try:
                have = part.stat().st_size if part.exists() else 0
                extra = {"Range": f"bytes={have}-"} if have else {}
                with session.get(current, headers={**headers, **extra}, stream=True,
                                 timeout=(connect_timeout, read_timeout)) as r:
                    if r.status_code == 416:  # the partial file is already complete (or bigger)
                        part.unlink(missing_ok=True)
                        attempt += 1
                        continue
                    blocks = r.iter_content(CHUNK)
                    first = next(blocks, b"")
                    kind = r.headers.get("Content-Type", "")
                    if r.status_code in (401, 403) or (r.ok and looks_like_html(first, kind)):
                        page = (first + b"".join(blocks)).decode("utf-8", "replace") if r.ok else ""
                        target = (confirmation_url(page, r.url, session.cookies.get_dict(), resource_key)
                                  if r.ok else None)
                        if target is None or confirmations >= MAX_CONFIRMATIONS:
                            raise html_page_error(url, r.status_code, dest)
                        confirmations += 1
                        current = target
                        continue  # a confirmation page: no attempt spent
                    r.raise_for_status()
                    resumed = r.status_code == 206 and have > 0
                    if not resumed:
                        have = 0
                    total = int(r.headers.get("Content-Length", 0)) + have or None
                    with open(part, "ab" if resumed else "wb") as f, \
                            tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=dest.name,
                                 disable=not progress, leave=False) as bar:
                        f.write(first)
                        bar.update(len(first))
                        for block in blocks:
                            f.write(block)
                            bar.update(len(block))
                    if total is not None and part.stat().st_size < total:
                        raise requests.ConnectionError(f"connection closed at {part.stat().st_size} of {total} bytes")
                actual = md5sum(part)
                if actual != md5:
                    part.unlink(missing_ok=True)
                    raise ArchiveError(f"{url}: MD5 mismatch: expected {md5}, actual {actual}")
                os.replace(part, dest)
                return dest
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                last_error = exc
                if isinstance(exc, requests.exceptions.ChunkedEncodingError) or "connection closed at" in str(exc):
                    last_error = requests.ConnectionError(f"truncated: the server closed the connection before "
                                                          f"the end of the file ({str(exc)[:120]})")
                if isinstance(exc, requests.ConnectTimeout) or "NameResolutionError" in str(exc) \
                        or "Connection refused" in str(exc):
                    break  # unreachable host: no point in waiting for it
                time.sleep(backoff * 2 ** attempt)
                attempt += 1
            except requests.HTTPError as exc:
                last_error = exc
                break  # 404 and friends: this mirror will not get better
    except ArchiveError:
        part.unlink(missing_ok=True)
        raise
    finally:
        session.close()
    part.unlink(missing_ok=True)
    raise ArchiveError(f"{url}: download failed ({type(last_error).__name__}: {last_error})")
