"""HTTP downloads that survive dead mirrors and dropped connections.

pooch and torchvision's download helpers restart a broken transfer from zero;
the real archives are up to 2 GB on slow academic servers, so this module adds
what they lack, on top of ``requests``: an HTTP Range request continues a
partial file when the server allows it (206), and starts over when it does not
(200). Bytes go to ``<dest>.part`` and the file is moved into place only after
its MD5 matches, so a failed or partial download never sits at the final path.
Connection errors are retried with backoff; an unreachable host fails within
seconds (short connect timeout), so an offline machine hears about every
missing archive quickly.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import requests
from tqdm import tqdm

from hetmtl.data.archives import ArchiveError, md5sum

CHUNK = 1 << 16


def http_download(url: str, dest: Path, md5: str, attempts: int = 4, connect_timeout: float = 4.0,
                  read_timeout: float = 60.0, backoff: float = 0.5, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), verify ``md5``, move into place."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for attempt in range(attempts):
        try:
            have = part.stat().st_size if part.exists() else 0
            headers = {"Range": f"bytes={have}-"} if have else {}
            with requests.get(url, headers=headers, stream=True, timeout=(connect_timeout, read_timeout)) as r:
                if r.status_code == 416:  # the partial file is already complete (or bigger)
                    have = 0
                    part.unlink(missing_ok=True)
                    continue
                r.raise_for_status()
                resumed = r.status_code == 206 and have > 0
                if not resumed:
                    have = 0
                total = int(r.headers.get("Content-Length", 0)) + have or None
                with open(part, "ab" if resumed else "wb") as f, \
                        tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=dest.name,
                             disable=not progress, leave=False) as bar:
                    for block in r.iter_content(CHUNK):
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
            if isinstance(exc, requests.ConnectTimeout) or "NameResolutionError" in str(exc) \
                    or "Connection refused" in str(exc):
                break  # unreachable host: no point in waiting for it
            time.sleep(backoff * 2 ** attempt)
        except requests.HTTPError as exc:
            last_error = exc
            break  # 404 and friends: this mirror will not get better
    part.unlink(missing_ok=True)
    raise ArchiveError(f"{url}: download failed ({type(last_error).__name__}: {last_error})")

