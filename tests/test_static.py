"""Static files served from Rust (`--static-path-*`, issue 15), on the real
server with real clients: httpx, curl, and raw sockets where a client
would normalise the path or decode the body."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import http.client
import os
import shutil
import socket
import subprocess
import threading
import time
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest
from conftest import Server, run_cli

SECRET = b"TOP SECRET: never served"
BIG = 50 * 1024 * 1024
RANGE_DATA = bytes(range(256)) * 4
FILES = {
    "index.html": b"<h1>home</h1>\n",
    "style.css": b"body { color: red }\n",
    "app.js": b"console.log('hi');\n",
    "data.json": b'{"a": 1}\n',
    "logo.png": b"\x89PNG\r\n\x1a\n" + bytes(100),
    "icon.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>\n",
    "README": b"no extension\n",
    "notes.txt": "café, naïve, 日本\n".encode(),
    "range.txt": RANGE_DATA,
    "comp.js": b"IDENTITY BODY",
    "comp.js.br": b"BROTLI BODY",
    "comp.js.gz": b"GZIP BODY",
    "gzonly.css": b"IDENTITY CSS",
    "gzonly.css.gz": b"GZIP CSS",
    "outside.js": b"OUTSIDE IDENTITY",
    "sub/index.html": b"<h1>sub</h1>\n",
    "nodir/file.txt": b"in nodir\n",
    "changing.txt": b"version 1\n",
}


def make_tree(root: Path) -> Path:
    """A mount with every kind of file, and a secret beside it."""
    (root / "secret.txt").write_bytes(SECRET)
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "secret.txt").write_bytes(SECRET)
    public = root / "public"
    for name, data in FILES.items():
        (public / name).parent.mkdir(parents=True, exist_ok=True)
        (public / name).write_bytes(data)
    with open(public / "big.bin", "wb") as f:
        for _ in range(BIG // (1024 * 1024)):
            f.write(os.urandom(1024 * 1024))
    os.symlink("../secret.txt", public / "leak")
    os.symlink("../elsewhere", public / "leakdir")
    os.symlink("style.css", public / "inner")
    os.symlink("sub", public / "innerdir")
    # A sibling that points outside must not be served, nor count.
    os.symlink("../secret.txt", public / "outside.js.br")
    os.mkfifo(public / "pipe")
    return public


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("static"))


@pytest.fixture(scope="module")
def server(tree, tmp_path_factory):
    """ASGI app; /static and /scope served from the mount, index.html for
    directories, the default expiry."""
    logs = tmp_path_factory.mktemp("logs")
    s = Server(
        "asgi_app:app",
        *("--static-path-route", "/static", "--static-path-mount", str(tree)),
        *("--static-path-route", "/scope", "--static-path-mount", str(tree / "sub")),
        *("--static-path-dir-to-file", "index.html"),
        tmp_path=logs,
    ).wait_ready()
    yield s
    code = s.stop()
    s.assert_clean_log()
    assert code == 0, s.log()


def raw_get(server, target: str, headers: str = "", method: str = "GET") -> tuple[int, bytes]:
    """The status and whole answer to a request sent as bytes (the target
    exactly as given)."""
    request = f"{method} {target} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n"
    answer = server.raw(request.encode("latin-1"))
    return int(answer.split(b" ", 2)[1]), answer


def plain(server, path: str, **headers: str) -> http.client.HTTPResponse:
    """A response whose body is left as sent (httpx would decode br/gzip)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    response.body = response.read()
    conn.close()
    return response


# -- content and headers ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("data.json", "application/json"),
        ("logo.png", "image/png"),
        ("icon.svg", "image/svg+xml"),
        ("README", "application/octet-stream"),
        ("notes.txt", "text/plain; charset=utf-8"),
    ],
)
def test_content_types_and_bytes(server, name, content_type):
    r = httpx.get(f"{server.url}/static/{name}")
    assert r.status_code == 200
    assert r.headers["content-type"] == content_type
    assert r.content == FILES[name]
    assert r.headers["content-length"] == str(len(FILES[name]))
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["cache-control"] == "max-age=86400"
    assert r.headers["etag"].startswith('"') and r.headers["etag"].endswith('"')
    assert r.headers["last-modified"].endswith(" GMT")
    assert "vary" not in r.headers


def test_head_has_the_headers_of_get_and_no_body(server):
    get = httpx.get(f"{server.url}/static/style.css")
    with socket.create_connection((server.host, server.port)) as s:
        s.sendall(b"HEAD /static/style.css HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        head = s.recv(65536)
    status, _, rest = head.partition(b"\r\n")
    assert status == b"HTTP/1.1 200 OK"
    assert head.endswith(b"\r\n\r\n"), "no body after the head"
    fields = dict(line.split(": ", 1) for line in rest.decode().split("\r\n") if ": " in line)
    for name in ("content-length", "content-type", "etag", "last-modified", "accept-ranges"):
        assert fields[name] == get.headers[name]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_other_methods_are_405_with_allow(server, method):
    r = httpx.request(method, f"{server.url}/static/style.css")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"
    assert r.content != FILES["style.css"]


def test_missing_files_are_404_from_rust(server):
    r = httpx.get(f"{server.url}/static/nope.css")
    assert r.status_code == 404
    # The app's own 404 says "not found"; this one never reached it.
    assert r.content == b"Not Found"


# -- requests outside the routes reach the app ----------------------------


def test_requests_outside_the_routes_reach_the_app(server):
    r = httpx.get(f"{server.url}/scopex")
    assert r.status_code == 200
    assert r.json()["path"] == "/scopex"
    r = httpx.get(f"{server.url}/scope/index.html")
    assert r.content == FILES["sub/index.html"]
    assert httpx.get(f"{server.url}/").content == b"Hello, world!"
    for path in ("/staticx", "/other", "/static.css"):
        r = httpx.get(f"{server.url}{path}")
        assert (r.status_code, r.content) == (404, b"not found"), path


@pytest.mark.parametrize(
    ("app", "route", "flags"),
    [
        ("wsgi_app:app", "/environ", ("--interface", "wsgi")),
        ("rsgi_app:app", "/scope", ("--interface", "rsgi")),
    ],
)
def test_other_interfaces_get_what_is_outside_the_route(serve, tree, app, route, flags):
    s = serve(
        app,
        *flags,
        *("--static-path-route", route, "--static-path-mount", str(tree)),
    )
    r = httpx.get(f"{s.url}{route}/style.css")
    assert r.content == FILES["style.css"]
    r = httpx.get(f"{s.url}{route}x")
    assert r.status_code == 200
    data = r.json()
    assert data.get("PATH_INFO", data.get("path")) == f"{route}x"
    assert httpx.get(f"{s.url}/").content == b"Hello, world!"


# -- large files ----------------------------------------------------------


def test_a_50_mib_file_streams_exactly_with_flat_memory(server, tree):
    expected = hashlib.sha256((tree / "big.bin").read_bytes()).hexdigest()
    httpx.get(f"{server.url}/static/style.css")
    before = server.rss_mib()
    with socket.create_connection((server.host, server.port)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = bytearray(s.recv(256 * 1024))
        # A client that stops reading: the server must wait, not buffer.
        time.sleep(1.5)
        during = server.rss_mib()
        while chunk := s.recv(1024 * 1024):
            data += chunk
    after = server.rss_mib()
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    assert b"content-length: %d" % BIG in head
    assert hashlib.sha256(body).hexdigest() == expected
    assert during - before < 16, (before, during)
    assert after - before < 16, (before, after)


def test_http2_with_curl(server, tree):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    out = subprocess.run(
        ["curl", "-sf", "--http2-prior-knowledge", f"{server.url}/static/big.bin"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    assert hashlib.sha256(out).digest() == hashlib.sha256((tree / "big.bin").read_bytes()).digest()
    head = subprocess.run(
        ["curl", "-sI", "--http2-prior-knowledge", f"{server.url}/static/notes.txt"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert head.startswith("HTTP/2 200")
    assert "content-type: text/plain; charset=utf-8" in head


# -- ranges ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "start", "end"),
    [
        ("bytes=0-9", 0, 10),
        ("bytes=100-199", 100, 200),
        ("bytes=-10", 1014, 1024),
        ("bytes=1000-", 1000, 1024),
        ("bytes=1000-5000", 1000, 1024),
    ],
)
def test_single_ranges(server, spec, start, end):
    r = httpx.get(f"{server.url}/static/range.txt", headers={"range": spec})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes {start}-{end - 1}/1024"
    assert r.content == RANGE_DATA[start:end]


def test_a_range_of_a_streamed_file(server, tree):
    r = httpx.get(f"{server.url}/static/big.bin", headers={"range": "bytes=10000000-10999999"})
    assert r.status_code == 206
    with open(tree / "big.bin", "rb") as f:
        f.seek(10_000_000)
        assert r.content == f.read(1_000_000)


def test_unsatisfiable_and_multiple_ranges(server):
    r = httpx.get(f"{server.url}/static/range.txt", headers={"range": "bytes=2000-"})
    assert r.status_code == 416
    assert r.headers["content-range"] == "bytes */1024"
    r = httpx.get(f"{server.url}/static/range.txt", headers={"range": "bytes=0-1,5-6"})
    assert r.status_code == 200
    assert r.content == RANGE_DATA


def test_if_range(server):
    first = httpx.get(f"{server.url}/static/range.txt")
    etag, date = first.headers["etag"], first.headers["last-modified"]
    for validator, status in [
        (etag, 206),
        ('"other"', 200),
        (f"W/{etag}", 200),
        (date, 206),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 200),
    ]:
        r = httpx.get(
            f"{server.url}/static/range.txt",
            headers={"range": "bytes=0-3", "if-range": validator},
        )
        assert r.status_code == status, validator
        assert r.content == (RANGE_DATA[:4] if status == 206 else RANGE_DATA)


# -- conditional requests -------------------------------------------------


def test_304_for_if_none_match_and_if_modified_since(server):
    first = httpx.get(f"{server.url}/static/style.css")
    etag, date = first.headers["etag"], first.headers["last-modified"]
    cases = [
        ({"if-none-match": etag}, 304),
        ({"if-none-match": f'"nope", {etag}'}, 304),
        ({"if-none-match": "*"}, 304),
        ({"if-none-match": f"W/{etag}"}, 304),
        ({"if-none-match": '"nope"'}, 200),
        ({"if-modified-since": date}, 304),
        ({"if-modified-since": formatdate(time.time() + 3600, usegmt=True)}, 304),
        ({"if-modified-since": "Thu, 01 Jan 1970 00:00:00 GMT"}, 200),
        ({"if-modified-since": "not a date"}, 200),
        # If-None-Match decides alone when present.
        ({"if-none-match": '"nope"', "if-modified-since": date}, 200),
    ]
    for headers, status in cases:
        r = httpx.get(f"{server.url}/static/style.css", headers=headers)
        assert r.status_code == status, headers
        if status == 304:
            assert r.content == b""
            assert r.headers["etag"] == etag
            assert r.headers["cache-control"] == "max-age=86400"
        else:
            assert r.content == FILES["style.css"]


def test_412_for_if_match_and_if_unmodified_since(server):
    first = httpx.get(f"{server.url}/static/style.css")
    etag, date = first.headers["etag"], first.headers["last-modified"]
    cases = [
        ({"if-match": etag}, 200),
        ({"if-match": f'"nope", {etag}'}, 200),
        ({"if-match": "*"}, 200),
        ({"if-match": f"W/{etag}"}, 412),  # compared strongly
        ({"if-match": '"nope"'}, 412),
        ({"if-unmodified-since": date}, 200),
        ({"if-unmodified-since": formatdate(time.time() + 3600, usegmt=True)}, 200),
        ({"if-unmodified-since": "Thu, 01 Jan 1970 00:00:00 GMT"}, 412),
        ({"if-unmodified-since": "not a date"}, 200),
        # If-Match decides alone when present, and before If-None-Match.
        ({"if-match": etag, "if-unmodified-since": "Thu, 01 Jan 1970 00:00:00 GMT"}, 200),
        ({"if-match": '"nope"', "if-none-match": etag}, 412),
        ({"if-match": etag, "if-none-match": etag}, 304),
    ]
    for headers, status in cases:
        r = httpx.get(f"{server.url}/static/style.css", headers=headers)
        assert r.status_code == status, headers
        if status == 200:
            assert r.content == FILES["style.css"]
    # A range of a version the client no longer has is refused, not sent.
    r = httpx.get(
        f"{server.url}/static/range.txt", headers={"range": "bytes=0-3", "if-match": '"old"'}
    )
    assert r.status_code == 412
    assert (
        httpx.head(f"{server.url}/static/style.css", headers={"if-match": '"old"'}).status_code
        == 412
    )


def test_a_changed_file_is_sent_again(server, tree):
    path = tree / "changing.txt"
    path.write_bytes(b"version 1\n")
    first = httpx.get(f"{server.url}/static/changing.txt")
    etag, date = first.headers["etag"], first.headers["last-modified"]
    path.write_bytes(b"version two\n")
    later = time.time() + 10
    os.utime(path, (later, later))
    for headers in ({"if-none-match": etag}, {"if-modified-since": date}):
        r = httpx.get(f"{server.url}/static/changing.txt", headers=headers)
        assert r.status_code == 200, headers
        assert r.content == b"version two\n"
        assert r.headers["etag"] != etag


def test_a_replaced_or_deleted_file_is_seen_within_the_cache_window(server, tree):
    """A lookup is trusted for 1 s (docs/static.md): a file renamed over
    the old one, a new sibling and a deletion are all seen after it."""
    path = tree / "replaced.txt"
    path.write_bytes(b"old\n")
    url = f"{server.url}/static/replaced.txt"
    assert plain(server, "/static/replaced.txt").body == b"old\n"
    fresh = tree / "replaced.tmp"
    fresh.write_bytes(b"new, longer\n")
    os.replace(fresh, path)
    (tree / "replaced.txt.gz").write_bytes(b"GZIP REPLACED")
    time.sleep(1.2)
    r = plain(server, "/static/replaced.txt")
    assert (r.body, r.getheader("Vary")) == (b"new, longer\n", "Accept-Encoding")
    gz = plain(server, "/static/replaced.txt", **{"Accept-Encoding": "gzip"})
    assert gz.body == b"GZIP REPLACED"
    path.unlink()
    (tree / "replaced.txt.gz").unlink()
    time.sleep(1.2)
    assert httpx.get(url).status_code == 404


# -- precompressed siblings -----------------------------------------------


@pytest.mark.parametrize(
    ("accept", "body", "coding"),
    [
        ("gzip, deflate, br", b"BROTLI BODY", "br"),
        ("br", b"BROTLI BODY", "br"),
        ("gzip", b"GZIP BODY", "gzip"),
        ("br;q=0, gzip", b"GZIP BODY", "gzip"),
        ("identity", b"IDENTITY BODY", None),
        ("", b"IDENTITY BODY", None),
    ],
)
def test_precompressed_siblings(server, accept, body, coding):
    r = plain(server, "/static/comp.js", **({"Accept-Encoding": accept} if accept else {}))
    assert r.status == 200
    assert r.body == body
    assert r.getheader("Content-Encoding") == coding
    assert r.getheader("Vary") == "Accept-Encoding"
    assert r.getheader("Content-Type") == "text/javascript; charset=utf-8"
    assert r.getheader("Content-Length") == str(len(body))


def test_siblings_have_their_own_etags_and_ranges_take_the_identity_file(server):
    br = plain(server, "/static/comp.js", **{"Accept-Encoding": "br"})
    identity = plain(server, "/static/comp.js")
    assert br.getheader("ETag") != identity.getheader("ETag")
    r = plain(server, "/static/comp.js", **{"Accept-Encoding": "br", "Range": "bytes=0-7"})
    assert r.status == 206
    assert r.body == b"IDENTITY"
    assert r.getheader("Content-Encoding") is None
    assert r.getheader("Vary") == "Accept-Encoding"
    gz = plain(server, "/static/gzonly.css", **{"Accept-Encoding": "br, gzip"})
    assert (gz.body, gz.getheader("Content-Encoding")) == (b"GZIP CSS", "gzip")


def test_a_sibling_pointing_outside_is_ignored(server):
    r = plain(server, "/static/outside.js", **{"Accept-Encoding": "br"})
    assert r.body == b"OUTSIDE IDENTITY"
    assert r.getheader("Content-Encoding") is None
    assert r.getheader("Vary") is None


# -- directories ----------------------------------------------------------


def test_dir_to_file(server):
    for path in ("/static/", "/static"):
        assert httpx.get(f"{server.url}{path}").content == FILES["index.html"], path
    r = httpx.get(f"{server.url}/static/sub/")
    assert r.content == FILES["sub/index.html"]
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert httpx.get(f"{server.url}/static/innerdir/").content == FILES["sub/index.html"]
    # A directory without the file is not listed.
    r = httpx.get(f"{server.url}/static/nodir/")
    assert (r.status_code, r.content) == (404, b"Not Found")
    # A file asked for as a directory.
    assert httpx.get(f"{server.url}/static/style.css/").status_code == 404


def test_without_dir_to_file_a_directory_is_404(serve, tree):
    s = serve(
        "asgi_app:app",
        *("--static-path-route", "/static", "--static-path-mount", str(tree)),
        *("--static-path-expires", "0"),
    )
    for path in ("/static/", "/static", "/static/sub/", "/static/nodir"):
        r = httpx.get(f"{s.url}{path}")
        assert (r.status_code, r.content) == (404, b"Not Found"), path
    r = httpx.get(f"{s.url}/static/style.css")
    assert r.content == FILES["style.css"]
    assert "cache-control" not in r.headers


def test_one_mount_without_a_route_is_served_at_static(serve, tree):
    s = serve("asgi_app:app", "--static-path-mount", str(tree), "--static-path-expires", "1h")
    r = httpx.get(f"{s.url}/static/style.css")
    assert r.content == FILES["style.css"]
    assert r.headers["cache-control"] == "max-age=3600"


# -- paths that try to leave the mount ------------------------------------

TRAVERSALS = [
    ("/static/../secret.txt", 404),
    ("/static/../../etc/passwd", 404),
    ("/static/%2e%2e/secret.txt", 404),
    ("/static/%2E%2e/secret.txt", 404),
    ("/static/.%2e/secret.txt", 404),
    ("/static/%2e./secret.txt", 404),
    ("/static/..%2fsecret.txt", 404),
    ("/static/%2f..%2fsecret.txt", 404),
    ("/static/sub/..%2f..%2fsecret.txt", 404),
    ("/static/..%5csecret.txt", 404),
    ("/static/..\\secret.txt", 404),
    ("/static/..%5C..%5Csecret.txt", 404),
    ("/static/secret.txt%00.css", 404),
    ("/static/%00", 404),
    ("/static//etc/passwd", 404),
    ("/static/%2e%2e/%2e%2e/etc/passwd", 404),
    ("/static/%252e%252e/secret.txt", 404),
    ("/static/%c0%ae%c0%ae/secret.txt", 404),
    ("/static/..;/secret.txt", 404),
    ("/static/./style.css", 404),
    ("/static/leak", 404),
    ("/static/leakdir/secret.txt", 404),
    ("/static/pipe", 404),
    ("/static/%zz", 400),
    ("/static/%2", 400),
    # Outside the routes: the app's own 404.
    ("//etc/passwd", 404),
    ("/static%2f..%2fsecret.txt", 404),
    ("http://x/static/../secret.txt", 404),
]


@pytest.mark.parametrize(("target", "status"), TRAVERSALS)
def test_no_path_leaves_the_mount(server, target, status):
    got, answer = raw_get(server, target)
    assert SECRET not in answer
    assert got == status, answer[:200]


def test_a_symlink_inside_the_mount_is_followed(server):
    r = httpx.get(f"{server.url}/static/inner")
    assert r.content == FILES["style.css"]


def test_an_absolute_symlink_inside_the_mount_is_followed(serve, tmp_path):
    public = tmp_path / "public"
    (public / "real").mkdir(parents=True)
    (public / "real" / "page.txt").write_bytes(b"inside")
    os.symlink(public / "real", public / "alias")
    server = serve("asgi_app:app", "--static-path-mount", str(public))
    assert httpx.get(f"{server.url}/static/alias/page.txt").content == b"inside"


def openat2_works(directory: Path) -> bool:
    """Whether this kernel lets a process call openat2 (what the server
    falls back from when it cannot)."""
    libc = ctypes.CDLL(None, use_errno=True)
    how = (ctypes.c_uint64 * 3)(os.O_RDONLY, 0, 0)  # flags, mode, resolve
    fd = libc.syscall(437, -100, str(directory).encode(), ctypes.byref(how), ctypes.sizeof(how))
    if fd >= 0:
        os.close(fd)
        return True
    return ctypes.get_errno() not in (errno.ENOSYS, errno.EPERM)


def test_a_directory_swapped_for_a_symlink_while_files_are_looked_up_never_leaks(serve, tmp_path):
    """The race between checking a path and opening it: a directory of the
    mount is replaced, over and over, by a symlink to a directory outside
    holding files of the same names. Each request names a file not looked
    up before (the lookup cache would answer otherwise)."""
    if not openat2_works(tmp_path):
        pytest.skip("openat2 refused here (kernel < 5.6 or seccomp): only the check stands")
    outside, public = tmp_path / "outside", tmp_path / "public"
    names = [f"f{i}.txt" for i in range(3000)]
    for directory, data in ((outside, SECRET), (public / "dir", b"inside")):
        directory.mkdir(parents=True)
        for name in names:
            (directory / name).write_bytes(data)
    server = serve("asgi_app:app", "--static-path-mount", str(public))
    done = threading.Event()

    def swap() -> None:
        real, held = public / "dir", public / "dir.real"
        while not done.is_set():
            real.rename(held)
            real.symlink_to(outside)
            real.unlink()
            held.rename(real)

    swapper = threading.Thread(target=swap)
    swapper.start()
    statuses: dict[int, int] = {}
    try:
        with httpx.Client(base_url=server.url) as client:
            for name in names:
                r = client.get(f"/static/dir/{name}")
                assert SECRET not in r.content, name
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
    finally:
        done.set()
        swapper.join()
    # Some lookups found the real directory, and the rest a clean 404.
    assert statuses.get(200, 0) > 0, statuses
    assert set(statuses) <= {200, 404}, statuses


# -- bad settings ---------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--static-path-mount", "/no/such/dir"), "--static-path-mount"),
        (("--static-path-route", "static", "--static-path-mount", "."), "--static-path-route"),
        (
            ("--static-path-route", "/a", "--static-path-route", "/b", "--static-path-mount", "."),
            "--static-path-route and --static-path-mount",
        ),
        (
            (
                "--static-path-route",
                "/a",
                "--static-path-route",
                "/a/",
                "--static-path-mount",
                ".",
                "--static-path-mount",
                ".",
            ),
            "--static-path-route",
        ),
        (
            ("--static-path-mount", ".", "--static-path-dir-to-file", "../x"),
            "--static-path-dir-to-file",
        ),
        (("--static-path-mount", ".", "--static-path-expires", "soon"), "--static-path-expires"),
    ],
)
def test_bad_settings_stop_start_up_with_one_line(tmp_path, args, named):
    (tmp_path / "file").write_text("not a directory")
    result = run_cli(*args, "asgi_app:app", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]


def test_a_mount_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    result = run_cli("--static-path-mount", "file", "asgi_app:app", cwd=tmp_path)
    assert result.returncode == 2
    assert "--static-path-mount: no such directory: file" in result.stderr
