"""Which URLs a source accepts, how credentials reach the server, and how URLs are shown.

Credentials never reach a file, a log line, a Snakemake param or the screen: every message,
log line and manifest shows :func:`redact_url`'s form of a URL. The safe ways to pass
credentials keep them out of the config entirely: ``~/.netrc`` (read by requests, which
pooch uses), or ``source.auth_env`` / ``source.token_env``, which name environment
variables. Standard library only, so config checks can use it before any job runs.
"""

from __future__ import annotations

import base64
import copy
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

#: URL schemes each remote source kind accepts. Local files and stores use ``kind: local``.
SCHEMES: dict[str, tuple[str, ...]] = {
    "http": ("http", "https"),
    "zarr": ("http", "https", "s3", "gs"),
}

#: Query keys whose values are credentials (token, api_key, sig, X-Amz-Signature, ...).
CREDENTIAL_KEY = re.compile(r"token|key|secret|pass|pwd|sig|credential|auth|session", re.I)

#: A URL inside free text, e.g. in an exception message from requests or fsspec.
URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")

MASK = "***"


class DownloadError(RuntimeError):
    """A download failed; the message names the (redacted) URL and how to work around it."""


def _redact_pair(pair: str) -> str:
    key, sep, _value = pair.partition("=")
    return f"{key}={MASK}" if sep and CREDENTIAL_KEY.search(unquote_plus(key)) else pair


def redact_url(url: str) -> str:
    """``url`` with its userinfo and credential-looking query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:  # malformed (e.g. an unclosed IPv6 bracket): show nothing of it
        return f"<unparseable URL {MASK}>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = "&".join(_redact_pair(p) for p in parts.query.split("&")) if parts.query else ""
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (for messages of errors raised by libraries)."""
    return URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text)


def has_credentials(url: str) -> bool:
    """Whether ``url`` embeds credentials (userinfo or a credential-looking query key)."""
    return redact_url(url) != url


def scheme_error(kind: str, url: str) -> str | None:
    """Why a ``kind`` source refuses ``url``, or None when its scheme is accepted."""
    allowed = SCHEMES[kind]
    scheme = urlsplit(url).scheme.lower()
    if scheme in allowed:
        return None
    got = f"scheme '{scheme}'" if scheme else "no scheme"
    what = "files" if kind == "http" else "stores"
    return (
        f"the {kind} source accepts only {', '.join(allowed)} URLs, but '{redact_url(url)}' "
        f"has {got}; for local {what} use 'source: {{kind: local, path: ...}}'"
    )


def check_scheme(kind: str, url: str, dataset: str) -> None:
    """Raise DownloadError naming the key when a ``kind`` source refuses ``url``."""
    problem = scheme_error(kind, url)
    if problem:
        raise DownloadError(f"datasets.{dataset}.source.url: {problem}")


def listed_urls(source: Mapping[str, Any]) -> list[str]:
    """The source's ``url``, one or a list (an archive in several files: CAMELS-US's time
    series and its attributes)."""
    url = source["url"]
    return [url] if isinstance(url, str) else list(url)


def public_source(source: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a source config that is safe to write or print: its URL(s) redacted."""
    public = copy.deepcopy(dict(source))
    if "url" in public:
        urls = [redact_url(url) for url in listed_urls(public)]
        public["url"] = urls[0] if isinstance(public["url"], str) else urls
    return public


def dataset_params(dataset: Mapping[str, Any]) -> dict[str, Any]:
    """A dataset config for Snakemake ``params`` (stored in .snakemake/metadata, printed by -p).

    Changes to the source still change the params (so the download reruns); credentials,
    which must not be stored, do not. The job reads the real URL from the config itself.
    """
    params = copy.deepcopy(dict(dataset))
    params["source"] = public_source(dataset["source"])
    return params


def _env(var: str, key: str) -> str:
    value = os.environ.get(var)
    if not value:
        raise DownloadError(
            f"{key}: environment variable '{var}' is not set (or empty); export it in the "
            "shell (or the cluster profile) that runs the pipeline"
        )
    return value


def auth_headers(source: Mapping[str, Any], dataset: str) -> dict[str, str]:
    """HTTP headers carrying the credentials that ``auth_env``/``token_env`` point to.

    ``auth_env: {username: VAR, password: VAR}`` gives HTTP basic auth; ``token_env: VAR``
    gives ``Authorization: Bearer <token>``. Without either, requests falls back to the
    credentials in the URL or in ``~/.netrc`` (or the file ``$NETRC`` names).
    """
    key = f"datasets.{dataset}.source"
    if "auth_env" in source:
        names = source["auth_env"]
        user = _env(names["username"], f"{key}.auth_env.username")
        password = _env(names["password"], f"{key}.auth_env.password")
        pair = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}
    if "token_env" in source:
        return {"Authorization": f"Bearer {_env(source['token_env'], f'{key}.token_env')}"}
    return {}
