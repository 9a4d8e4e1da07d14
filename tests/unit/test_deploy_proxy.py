"""The proxy example (deploy/nginx.conf) routes as deploy/README.md's route table says, and
every route each service serves reaches that service through it.

No nginx needed: :class:`Locations` picks a location for a path as nginx does (an exact
match; else the longest prefix, unless it is ``^~`` the regular expressions first, in the
file's order). When nginx is installed, ``nginx -t`` checks the file too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.app import create_app
from shared.config import SERVICES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROXY = DEPLOY / "nginx.conf"
#: What stands in for a path's parameters when a route is tried.
SAMPLE = {"code": "410303001001", "name": "aliyun"}
SAMPLE_ID = "0b6f1c2e-8d3a-4f7e-9c1b-2a5d6e7f8a9b"


@dataclass(frozen=True)
class Location:
    modifier: str  # "", "=", "^~", "~" or "~*"
    pattern: str
    body: str

    @property
    def upstream(self) -> str:
        """Where it sends a request: ``servicemonth_<name>``, or ``return <status>``."""
        found = re.search(r"proxy_pass http://(\w+);", self.body)
        if found:
            return found.group(1)
        status = re.search(r"return (\d+)", self.body)
        assert status, f"location {self.pattern}: neither proxy_pass nor return"
        return f"return {status.group(1)}"

    @property
    def body_limit(self) -> str | None:
        found = re.search(r"client_max_body_size (\w+);", self.body)
        return found.group(1) if found else None


class Locations:
    """The ``location`` blocks of the HTTPS server, and nginx's choice among them."""

    def __init__(self, text: str) -> None:
        server = text[text.index("listen 443") :]
        self.server = server
        self.all = [
            Location(m.group(1) or "", m.group(2), m.group(3))
            for m in re.finditer(r"location\s+(=|\^~|~\*|~)?\s*(\S+)\s*\{([^}]*)\}", server)
        ]

    def choose(self, path: str) -> Location:
        for loc in self.all:
            if loc.modifier == "=" and loc.pattern == path:
                return loc
        prefixes = [
            loc for loc in self.all if loc.modifier in ("", "^~") and path.startswith(loc.pattern)
        ]
        longest = max(prefixes, key=lambda loc: len(loc.pattern), default=None)
        if longest is not None and longest.modifier == "^~":
            return longest
        for loc in self.all:
            flags = re.IGNORECASE if loc.modifier == "~*" else 0
            if loc.modifier in ("~", "~*") and re.search(loc.pattern, path, flags):
                return loc
        assert longest is not None, f"{path}: no location"
        return longest


@pytest.fixture(scope="module")
def locations() -> Locations:
    return Locations(PROXY.read_text(encoding="utf-8"))


def route_table() -> dict[str, list[str]]:
    """deploy/README.md's route table: service → the paths it lists (backticked, from /)."""
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    table = text[text.index("| paths | service |") :].split("\n\n", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in table.splitlines()[2:]:
        paths, service = line.strip("|").rsplit("|", 1)
        paths = re.sub(r"not under `[^`]*`", "", paths)  # the web app's row
        listed = re.findall(r"`([^`]+)`", paths)
        rows[service.strip()] = [p for p in listed if p.startswith("/")]
    return rows


def example(path: str) -> str:
    """A request path for ``path``: parameters filled in, a trailing ``/`` continued."""
    path = re.sub(r"\{(\w+)\}", lambda m: SAMPLE.get(m.group(1), SAMPLE_ID), path)
    return path + "x" if path.endswith("/") else path


def test_the_route_table_covers_the_four_services_and_the_web_app() -> None:
    table = route_table()
    assert set(table) == {*SERVICES, "web"}
    assert all(table.values())


def test_every_path_of_the_route_table_reaches_its_service(locations: Locations) -> None:
    text = PROXY.read_text(encoding="utf-8")
    for service, paths in route_table().items():
        for path in paths:
            if path.startswith("/api/") and "{" not in path:  # the pages: location /
                assert path in text, f"{path} ({service}) is not in deploy/nginx.conf"
            chosen = locations.choose(example(path))
            assert chosen.upstream == f"servicemonth_{service}", (path, chosen.pattern)


def test_every_route_a_service_serves_reaches_it(locations: Locations) -> None:
    for service in SERVICES:
        for path in create_app([service]).openapi()["paths"]:
            if not path.startswith("/api/"):
                continue  # /healthz, /readyz: each process's own, not the proxy's
            chosen = locations.choose(example(path))
            assert chosen.upstream == f"servicemonth_{service}", (path, chosen.pattern)


def test_pages_go_to_the_web_app_and_unknown_api_paths_nowhere(locations: Locations) -> None:
    for path in ("/", "/login", "/me", "/c/410303001001", "/leader", "/static/htmx.min.js"):
        assert locations.choose(path).upstream == "servicemonth_web", path
    assert locations.choose("/api/v2/members").upstream == "return 404"
    assert locations.choose("/metrics").upstream == "return 404"


def test_the_proxy_passes_the_callers_address_and_limits_bodies(locations: Locations) -> None:
    server = locations.server
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in server
    assert "proxy_set_header" not in "".join(loc.body for loc in locations.all)  # inherited
    assert re.search(r"^\s*client_max_body_size 1m;", server, re.M)
    uploads = {
        "/api/v1/rosters": "51m",  # the roster's own cap is 50 MB
        "/api/v1/staff/import": "6m",  # 5 MB
        "/api/v1/communities/410303001001/needs/upload": "11m",  # 10 MB
        "/unit/roster": "51m",
        "/community/publish/needs/upload": "11m",
    }
    for path, limit in uploads.items():
        assert locations.choose(path).body_limit == limit, path
    assert "ssl_certificate " in server and "ssl_certificate_key " in server


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_accepts_the_file(tmp_path: Path) -> None:
    """``nginx -t`` on the file inside a minimal main configuration, with a throw-away
    certificate in place of the placeholders."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=servicemonth.test", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    site = PROXY.read_text(encoding="utf-8")
    site = site.replace("/etc/ssl/servicemonth/fullchain.pem", str(cert))
    site = site.replace("/etc/ssl/servicemonth/privkey.pem", str(key))
    (tmp_path / "site.conf").write_text(site, encoding="utf-8")
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{ include {tmp_path}/site.conf; }}\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
