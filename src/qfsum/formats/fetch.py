"""Fetching a document from an http(s) URL, bounded: a size limit, a timeout, and only the content
types qfsum reads (HTML, plain text, PDF, DOCX). Every failure is one line for the user."""

from __future__ import annotations

import http.client
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import QfsumError

TIMEOUT_S = 30.0  # per connect and per read, not for the whole download
MAX_BYTES = 32 * 2**20
USER_AGENT = "qfsum (query-focused summarization)"
_READABLE = ("text/html", "application/xhtml+xml", "text/plain", "text/markdown", "text/x-markdown",
             "application/pdf", "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Fetched:
    """What a server sent: the body, its media type ("text/html"), its charset if named, the final URL."""

    data: bytes
    content_type: str
    charset: str | None
    url: str


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only: urllib's default would also follow one to ftp://."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
        if urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise QfsumError(f"{req.full_url}: redirected to {newurl}, which is not an http(s) URL")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch(url: str, max_bytes: int = MAX_BYTES, timeout: float = TIMEOUT_S) -> Fetched:
    """GET `url` and return its body, or raise QfsumError: not http(s), cannot connect, an HTTP
    error status, a timeout, over `max_bytes`, or a content type qfsum does not read."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise QfsumError(f"{url}: only http:// and https:// URLs can be read")
    if not parts.hostname:
        raise QfsumError(f"{url}: not a valid URL (no host)")
    opener = urllib.request.build_opener(_HttpOnlyRedirects)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": ", ".join(_READABLE)})
    try:
        with opener.open(request, timeout=timeout) as response:
            media_type = response.headers.get_content_type()  # "text/plain" when the server names none
            if media_type not in _READABLE:
                raise QfsumError(f"{url}: the server sent {media_type}; qfsum reads HTML, plain text, PDF and DOCX")
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise QfsumError(f"{url}: {_too_large(int(length), max_bytes)}")
            data = _read_limited(response, url, max_bytes)
            return Fetched(data, media_type, response.headers.get_content_charset(), response.geturl())
    except QfsumError:
        raise
    except urllib.error.HTTPError as err:
        raise QfsumError(f"{url}: HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:  # connecting failed (refused, timed out, unknown host, TLS)
        if isinstance(err.reason, TimeoutError):
            raise QfsumError(f"{url}: no answer within {timeout:g} s") from None
        raise QfsumError(f"{url}: {_reason(err.reason)}") from None
    except TimeoutError:  # reading the reply stalled (socket.timeout is TimeoutError)
        raise QfsumError(f"{url}: no answer within {timeout:g} s") from None
    except (OSError, ValueError, http.client.HTTPException) as err:  # reset connections, malformed replies
        raise QfsumError(f"{url}: {_reason(err)}") from None


def _read_limited(response, url: str, max_bytes: int) -> bytes:  # noqa: ANN001
    """The body in chunks, refused as soon as it passes `max_bytes` (Content-Length may be absent or lie)."""
    chunks, size = [], 0
    while chunk := response.read(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise QfsumError(f"{url}: {_too_large(None, max_bytes)}")
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int | None, max_bytes: int) -> str:
    said = f"{size / 2**20:.0f} MB, " if size else ""
    return f"the document is {said}over the {max_bytes // 2**20} MB limit"


def _reason(reason: object) -> str:
    """A short, human reason for a network failure."""
    if isinstance(reason, ConnectionRefusedError):
        return "cannot connect (connection refused)"
    if isinstance(reason, socket.gaierror):
        return "cannot find the host (name resolution failed)"
    if isinstance(reason, ssl.SSLError):
        return f"secure connection failed ({reason.reason or reason})"
    if isinstance(reason, OSError) and reason.strerror:
        return f"cannot connect ({reason.strerror.lower()})"
    text = " ".join(str(reason).split())[:160]
    return f"cannot fetch ({text or type(reason).__name__})"

