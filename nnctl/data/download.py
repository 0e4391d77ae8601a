"""Downloads that are checked and atomic: a file appears under its name only whole and verified."""

import contextlib
import hashlib
import http.client
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

from tqdm import tqdm

from nnctl.errors import DataError
from nnctl.limits import gunzip, size_text
from nnctl.outputs import missing_folders, remove_empty

SCHEMES = ("http", "https")
"""What a mirror may be: file:///dev/zero would fill the disk, and other schemes reach what HTTP cannot."""
DEADLINE = 3600.0
"""The most seconds one download may take in all (each read also times out): CIFAR-10's 170 MB at 50 KB/s."""


def fetch(url: str, dest: Path, md5: str, size: int, of_contents: bool = True, timeout: float = 30) -> None:
    """Downloads a .gz file to `dest`, checking the MD5 of its `size` bytes of decompressed contents (or, with
    `of_contents` false, of the `size` bytes as served); nothing is left on failure."""
    part = dest.with_suffix(dest.suffix + ".part")
    made = missing_folders(dest.parent)
    try:
        if urllib.parse.urlsplit(url).scheme not in SCHEMES:
            raise DataError(f"{url}: not an http:// or https:// URL, the only ones nnctl downloads from")
        dest.parent.mkdir(parents=True, exist_ok=True)
        _download(url, part, _gzip_bound(size) if of_contents else size, timeout)
        try:
            raw = part.read_bytes()
            contents, whole = gunzip(raw, size) if of_contents else (raw, True)
            actual = hashlib.md5(contents).hexdigest() if whole else f"of more than the {size:,} bytes expected"
        except (OSError, EOFError, zlib.error):
            raise DataError(f"{url}: the download is not a valid gzip file") from None
        if actual != md5:
            what = "the contents" if of_contents else "the file"
            raise DataError(f"{url}: checksum mismatch (MD5 of {what} {actual}, expected {md5})")
        os.replace(part, dest)
    except urllib.error.HTTPError as exc:
        raise DataError(f"{url}: HTTP {exc.code} {' '.join(str(exc.reason).split())}") from None  # one line
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        raise DataError(f"{url}: download failed ({getattr(exc, 'reason', None) or exc})") from None
    finally:
        with contextlib.suppress(OSError):  # a part whose path cannot be followed (a link loop) was never written
            part.unlink(missing_ok=True)
        remove_empty(made)


def _gzip_bound(size: int) -> int:
    """The most bytes a gzip file of `size` bytes of contents takes: deflate's stored blocks, and headers."""
    return size + size // 1000 + 4096


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to http(s): urllib's own also follows one to ftp://, which SCHEMES keeps out."""

    def http_error_302(self, req, fp, code, msg, headers):
        target = urllib.parse.urljoin(req.full_url, headers.get("Location") or headers.get("URI") or "")
        if urllib.parse.urlsplit(target).scheme not in SCHEMES:
            raise DataError(f"{req.full_url}: the server redirects to {target}, not an http:// or https:// URL")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


_OPENER = urllib.request.build_opener(_HttpOnlyRedirects)


def _download(url: str, part: Path, cap: int, timeout: float) -> None:
    """Writes what `url` serves to `part`; DataError when it is (or declares) more than `cap` bytes, or takes
    more than DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    with _OPENER.open(url, timeout=timeout) as response, open(part, "wb") as f:
        total = _declared_size(response.headers.get("Content-Length"))
        if total and total > cap:
            raise DataError(f"{url}: the server declares {size_text(total)}, more than the {size_text(cap)} "
                            "this file can be")
        with tqdm(total=total, unit="B", unit_scale=True, desc=part.name, leave=False, disable=None) as bar:
            while chunk := response.read1(1 << 16):
                f.write(chunk)
                bar.update(len(chunk))
                if f.tell() > cap:
                    raise DataError(f"{url}: the server sent more than the {size_text(cap)} this file can be")
                if time.monotonic() > deadline:
                    raise DataError(f"{url}: the download took more than {DEADLINE:g} s; try again later or "
                                    "another mirror")
        if total and f.tell() < total:  # http.client ends a cut-off body quietly: it would fail as a bad checksum
            raise DataError(f"{url}: the server closed the connection after {f.tell():,} of the {total:,} bytes it "
                            "declared; try again later or another mirror")


def _declared_size(length: str | None) -> int | None:
    """The size a Content-Length header declares; None where there is none, or no whole number (the body says)."""
    return int(length) if length and length.strip().isdigit() and int(length) > 0 else None


def fetch_first(bases: list[str], name: str, dest: Path, md5: str, size: int, of_contents: bool = True) -> None:
    """`fetch` of `name` from the first base URL that serves it whole; DataError listing every failure."""
    failures = []
    for base in bases:
        try:
            fetch(base.rstrip("/") + "/" + name, dest, md5, size, of_contents)
            return
        except DataError as exc:
            failures.append(str(exc))
    raise DataError(f"{dest} is missing and could not be downloaded:\n  " + "\n  ".join(failures))
