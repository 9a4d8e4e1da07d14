"""Signing in through the pages: the code from the file channel, CSRF on every form."""

from __future__ import annotations

import httpx

from tests.web.site import Site, csrf


def test_a_new_number_signs_in_and_lands_on_the_registration_form(site: Site) -> None:
    with site.browser_client("13700001001") as web:
        home = web.get("/")
        cookie = next(c for c in web.cookies.jar if c.name == "sm_session")
    assert home.status_code == 303
    assert home.headers["location"] == "/register"
    assert "httponly" in {key.lower() for key in cookie._rest}  # type: ignore[attr-defined]
    assert cookie._rest.get("samesite") == "lax"  # type: ignore[attr-defined]


def test_a_form_without_the_session_csrf_token_is_refused(site: Site) -> None:
    with site.browser_client("13700001002") as web:
        refused = web.post("/logout", data={"csrf": "forged"})
        assert refused.status_code == 403
        assert web.get("/").headers["location"] == "/register"  # still signed in
        out = web.post("/logout", data={"csrf": csrf(web.get("/login").text)})
        assert out.status_code == 303
        assert web.get("/").status_code == 200  # the welcome page: signed out


def test_a_wrong_code_is_said_next_to_the_field(site: Site) -> None:
    with httpx.Client(base_url=site.url) as web:
        token = csrf(web.get("/login").text)
        web.post("/login/code", data={"csrf": token, "phone": "13700001003"})
        wrong = web.post("/login", data={"csrf": token, "phone": "13700001003", "code": "000000"})
    assert wrong.status_code == 401
    assert "验证码不正确或已过期" in wrong.text
    assert 'aria-invalid="true"' in wrong.text


def test_next_never_leaves_the_site(site: Site) -> None:
    with httpx.Client(base_url=site.url) as web:
        page = web.get("/login", params={"next": "//evil.example/x"}).text
    assert 'name="next" value="/"' in page


def test_each_visitor_has_their_own_sign_in_limit_not_the_web_servers(site: Site) -> None:
    """The API counts code requests per client address (30 an hour); behind the web app
    every visitor would share the server's one unless the web app passes theirs on."""
    with httpx.Client(base_url=site.url) as web:
        token = csrf(web.get("/login").text)
        answers = [
            web.post(
                "/login/code",
                data={"csrf": token, "phone": f"1370000{1100 + n}"},
                headers={"X-Forwarded-For": f"198.51.100.{n}"},  # as the front proxy says
            ).status_code
            for n in range(31)
        ]
    assert answers == [200] * 31


def test_strange_or_oversized_posts_are_refused_not_crashed(site: Site) -> None:
    with httpx.Client(base_url=site.url) as web:
        token = csrf(web.get("/login").text)
        odd = web.post("/login/code", data={"csrf": "中文", "phone": "13700001004"})
        assert odd.status_code == 403
        big = web.post("/login/code", data={"csrf": token, "phone": "1" * (2 * 1024 * 1024)})
        assert big.status_code == 413
        assert "太大" in big.text


def test_our_own_files_travel_compressed_and_pages_do_not(site: Site) -> None:
    """htmx is 52 KB; a phone on a slow line gets it gzipped. Pages stay uncompressed: they
    hold the CSRF token next to what the visitor typed (BREACH)."""
    with httpx.Client(base_url=site.url, headers={"Accept-Encoding": "gzip"}) as web:
        script = web.get("/static/htmx.min.js")
        page = web.get("/login")
    assert script.headers["content-encoding"] == "gzip"
    assert script.num_bytes_downloaded < len(script.content) / 2
    assert "content-encoding" not in page.headers
