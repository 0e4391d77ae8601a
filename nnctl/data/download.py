"""Downloads that are checked and atomic: a file appears under its name only whole and verified."""

import hashlib
import http.client
import os
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from tqdm import tqdm

from nnctl.errors import DataError
from nnctl.limits import gunzip, memory_limit


def fetch(url: str, dest: Path, md5: str, of_contents: bool = True, timeout: float = 30) -> None:
    """Downloads a .gz file to `dest`, checking the MD5 of its decompressed contents (or, with `of_contents`
    false, of the file as served); nothing is left on failure."""
    part = dest.with_suffix(dest.suffix + ".part")
    made = [folder for folder in (dest.parent, *dest.parent.parents) if not folder.exists()]
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as f:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False, disable=None) as bar:
                while chunk := response.read(1 << 16):
                    f.write(chunk)
                    bar.update(len(chunk))
        try:
            raw = part.read_bytes()
            contents, whole = gunzip(raw, memory_limit()) if of_contents else (raw, True)
            actual = hashlib.md5(contents).hexdigest() if whole else "of more than the memory limit"
        except (OSError, EOFError, zlib.error):
            raise DataError(f"{url}: the download is not a valid gzip file") from None
        if actual != md5:
            what = "the contents" if of_contents else "the file"
            raise DataError(f"{url}: checksum mismatch (MD5 of {what} {actual}, expected {md5})")
        os.replace(part, dest)
    except urllib.error.HTTPError as exc:
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        raise DataError(f"{url}: download failed ({getattr(exc, 'reason', None) or exc})") from None
    finally:
        part.unlink(missing_ok=True)
        _remove_empty(made)


def _remove_empty(folders: list[Path]) -> None:
    """Removes the folders a failed download made, deepest first, as long as they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def fetch_first(bases: list[str], name: str, dest: Path, md5: str, of_contents: bool = True) -> None:
    """`fetch` of `name` from the first base URL that serves it whole; DataError listing every failure."""
    failures = []
    for base in bases:
        try:
            fetch(base.rstrip("/") + "/" + name, dest, md5, of_contents)
            return
        except DataError as exc:
            failures.append(str(exc))
    raise DataError(f"{dest} is missing and could not be downloaded:\n  " + "\n  ".join(failures))
