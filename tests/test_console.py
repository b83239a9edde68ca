"""The web console (docs/console.md) in a real headless Chromium: a ``vecsim serve`` process with
the console on, on Qdrant Edge, photos and a video added through the API; then the console driven
with Selenium as a user drives it: log in, upload an edited copy, read the matches and the video
timeline, add and remove an asset, page through the list. Skips, saying why, where Debian's
``chromium`` / ``chromium-driver`` or the ``selenium`` package is absent.

``VECSIM_CONSOLE_SCREENSHOT=docs/console.png pytest tests/test_console.py`` also saves a screenshot
of the video query's result (the picture in docs/console.md)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="the serve extra is not installed")
pytest.importorskip("fastapi", reason="the serve extra is not installed")

from vecsim.sample_media import generated_distractor, sample_photo  # noqa: E402
from vecsim.testing.serve import start_service, stop_service  # noqa: E402
from vecsim.video_edits import VideoEdit, apply_edit, insert_into, slideshow, write_video  # noqa: E402

from .service_helpers import API, auth, jpeg  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT_S = 60  # the longest any step may take in the browser (a query on a busy CI machine)
SIZE, FPS = (320, 240), 5
EXCERPT = (8.0, 16.0)  # the seconds of the indexed video that the query video copies
INSERTED_AT = 4.0  # where the copied excerpt starts in the query video
PHOTOS = {"astronaut-001": ("astronaut", {"title": "Astronaut Eileen Collins", "rights": "NASA"}),
          "cat-002": ("chelsea", {"title": "Chelsea the cat", "rights": "CC0"})}
VIDEO = ("launch-video", {"title": "Launch day", "channel": "space"})
DISTRACTORS = [f"d-{i:02d}" for i in range(8)]  # enough assets for two pages of ten in the list


@pytest.fixture(scope="module")
def media(tmp_path_factory, photos):
    d = tmp_path_factory.mktemp("console-media")
    out = {tid: d / f"{name}.jpg" for tid, (name, _) in PHOTOS.items()}
    for tid, (name, _) in PHOTOS.items():
        out[tid].write_bytes(jpeg(photos[name]))
    # an edited copy of the astronaut photo: cropped and re-encoded
    out["astronaut_crop"] = d / "astronaut_crop.jpg"
    out["astronaut_crop"].write_bytes(jpeg(photos["astronaut"].crop((40, 40, 460, 460)), 80))
    for i, tid in enumerate(DISTRACTORS):
        out[tid] = d / f"{tid}.jpg"
        out[tid].write_bytes(jpeg(generated_distractor(100 + i)))
    out["coffee"] = d / "coffee.jpg"
    out["coffee"].write_bytes(jpeg(photos["coffee"]))
    # a 24 s video of four photos, and a query video that shows its seconds 8-16 from its own second 4
    shots = [sample_photo(n) for n in ("rocket", "camera", "coins", "immunohistochemistry")]
    out[VIDEO[0]] = write_video(d / "launch.mp4", slideshow(shots, 6, FPS, SIZE, seed=4), FPS)
    excerpt = apply_edit(out[VIDEO[0]], d / "excerpt.mp4", VideoEdit("excerpt", *EXCERPT))
    host = write_video(d / "host.mp4", slideshow([generated_distractor(i, SIZE) for i in (1, 2)], 5, FPS, SIZE,
                                                 seed=6), FPS)
    out["reupload"] = insert_into(host, excerpt, d / "reupload.mp4", at=INSERTED_AT)
    return out


@pytest.fixture(scope="module")
def service(tmp_path_factory, media):
    """A ``vecsim serve`` process with the console on (``VECSIM_CONSOLE=1``), a key of project
    ``shop`` and its assets (two photos, a video, eight distractors) added through the API."""
    d = tmp_path_factory.mktemp("console-service")
    svc = start_service(f"qdrant-edge:{d / 'index'}", d / "data",
                        env={"console": 1, "rate_limit_per_s": 1000, "rate_burst": 1000})
    try:
        svc.key = svc.create_key("shop")
        with httpx.Client(base_url=svc.url, timeout=120) as client:
            assets = {tid: (media[tid], meta) for tid, (_, meta) in PHOTOS.items()}
            assets[VIDEO[0]] = (media[VIDEO[0]], VIDEO[1])
            assets.update({tid: (media[tid], {"n": i}) for i, tid in enumerate(DISTRACTORS)})
            for tid, (path, meta) in assets.items():
                r = client.post(f"{API}/custom_index/add/sync", headers=auth(svc.key),
                                files={"media": (path.name, path.read_bytes())},
                                data={"task_id": tid, "metadata": json.dumps(meta)})
                assert r.status_code == 200, r.text
        yield svc
    finally:
        stop_service(svc)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through Debian's chromedriver (never a Selenium Manager download)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the test extra)")
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("Chromium or chromedriver is not installed (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--lang=en-US",
                "--window-size=1280,1700", "--force-color-profile=srgb", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingOptions", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_OFFLINE", "true")
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, condition, what: str, timeout: float = WAIT_S):
    """Poll ``condition`` until it holds (an element re-rendered meanwhile counts as not yet)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
                         ).until(condition, f"{what} within {timeout} s")


def _by_id(driver, element_id: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def _text_of(driver, element_id: str) -> str:
    return _by_id(driver, element_id).text


def _open(driver, service) -> None:
    """A fresh console tab state: the page loaded anew, nothing in sessionStorage."""
    driver.get(service.url + "/livez")  # same origin, no console script that might store a key meanwhile
    driver.execute_script("sessionStorage.clear()")
    driver.get(service.url + "/")
    driver.get_log("browser")  # start each test's console log empty


def _log_in(driver, service) -> None:
    _open(driver, service)
    _by_id(driver, "key").send_keys(service.key)
    _by_id(driver, "login-button").click()
    _wait(driver, lambda d: _by_id(d, "workspace").is_displayed(), "the workspace shown after log in")


def _query_file(driver, path: Path) -> list:
    """Upload ``path`` through the query's file input; the results' match cards."""
    from selenium.webdriver.common.by import By

    _by_id(driver, "query-file").send_keys(str(path))
    _wait(driver, lambda d: d.find_element(By.ID, "query-results").get_attribute("aria-busy") == "false"
          and path.name in _text_of(d, "query-status"), f"the query result of {path.name}")
    return driver.find_elements(By.CSS_SELECTOR, "#query-results article.match")


def _api_query(service, path: Path) -> dict:
    r = httpx.post(f"{service.url}{API}/custom_index/query/sync", headers=auth(service.key),
                   files={"media": (path.name, path.read_bytes())}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def _no_page_errors(driver) -> None:
    """Nothing the page did broke its CSP or threw (failed API answers are logged by Chromium
    as network errors; those are expected where a test asks for one)."""
    bad = [e["message"] for e in driver.get_log("browser")
           if "Content Security Policy" in e["message"] or "Uncaught" in e["message"]]
    assert not bad, bad


# --- the console's files, over HTTP ------------------------------------------------------------


def test_console_files_have_a_strict_csp_and_cache_headers(service):
    with httpx.Client(base_url=service.url, timeout=10) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["cache-control"] == "no-cache" and page.headers["etag"]
        assert "<script>" not in page.text and not re.search(r"\son[a-z]+=", page.text)  # no inline script
        assert client.get("/", headers={"If-None-Match": page.headers["etag"]}).status_code == 304
        # the script and the style sheet are named by content hash and cached for good
        refs = re.findall(r'"(console/[\w.]+\?v=[0-9a-f]{16})"', page.text)
        assert {r.split("?")[0] for r in refs} == {"console/console.js", "console/console.css", "console/icon.svg"}
        for ref in refs:
            r = client.get("/" + ref)
            assert r.status_code == 200 and r.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert r.headers["content-security-policy"] == csp
        script = client.get("/console/console.js")
        assert script.headers["cache-control"] == "no-cache"  # an unversioned name is revalidated
        assert script.headers["content-type"].startswith("text/javascript")
        missing = client.get("/console/secrets.txt")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert not any(p == "/" or p.startswith("/console") for p in client.get("/openapi.json").json()["paths"])


def test_console_is_off_by_default(tmp_path, monkeypatch):
    """Without --console (or VECSIM_CONSOLE / the config file's console = true), / is the same
    404 JSON as any unknown path; --console turns it on."""
    import uvicorn
    from fastapi.testclient import TestClient
    from starlette.routing import NoMatchFound
    from typer.testing import CliRunner

    from vecsim.cli import app
    from vecsim.server.settings import ServerSettings

    monkeypatch.delenv("VECSIM_CONSOLE", raising=False)
    assert ServerSettings().console is False
    started = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: started.append(self.config.app))
    monkeypatch.setattr("vecsim.server.observability.configure_logging", lambda level: None)
    args = ["serve", "--index", f"qdrant-edge:{tmp_path / 'index'}", "--data-dir", str(tmp_path / "data")]
    for extra in ([], ["--console"]):
        result = CliRunner().invoke(app, args + extra)
        assert result.exit_code == 0, result.output
    off, on = started
    assert on.url_path_for("console_index") == "/"
    with pytest.raises(NoMatchFound):
        off.url_path_for("console_index")
    with TestClient(off) as client:  # runs the app's lifespan; / needs no loaded index
        r = client.get("/")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text


# --- the console in Chromium ---------------------------------------------------------------------


def test_a_bad_key_shows_the_services_401_message(browser, service):
    _open(browser, service)
    _by_id(browser, "key").send_keys("vsk_not_a_real_key")
    _by_id(browser, "login-button").click()
    _wait(browser, lambda d: "401" in _text_of(d, "login-error"), "the 401 message")
    message = _text_of(browser, "login-error")
    assert "a valid API key is required" in message and "unauthorized" in message, message
    assert not _by_id(browser, "workspace").is_displayed()
    assert browser.execute_script("return sessionStorage.length") == 0
    bad = [e["message"] for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not bad, bad


def test_query_an_edited_photo_shows_the_asset_its_metadata_and_scores(browser, service, media):
    _log_in(browser, service)
    assert browser.execute_script("return sessionStorage.getItem('vecsim.console.key')") == service.key
    cards = _query_file(browser, media["astronaut_crop"])
    expected = _api_query(service, media["astronaut_crop"])["output"]
    assert cards and expected and len(cards) == len(expected)
    top, want = cards[0], expected[0]
    assert top.get_attribute("data-task-id") == want["task_id"] == "astronaut-001"
    text = top.text
    assert "Astronaut Eileen Collins" in text and '"rights": "NASA"' in text, text
    assert f"{want['score']:.3f}" in text  # the score the API gives for the same upload
    best = max(m["similarity_score"] for m in want["matches"])
    assert best >= 0.5 and f"{best:.3f}" in text
    assert "100 %" in text  # an image query: its one frame matched
    assert "1 frame match" in text
    assert _by_id(browser, "query-preview").is_displayed()  # the upload's own preview (a blob: URL)
    _no_page_errors(browser)


def test_video_query_draws_the_matched_segments(browser, service, media):
    from selenium.webdriver.common.by import By

    _log_in(browser, service)
    cards = _query_file(browser, media["reupload"])
    answer = _api_query(service, media["reupload"])
    expected = answer["output"]
    assert cards[0].get_attribute("data-task-id") == expected[0]["task_id"] == VIDEO[0]
    # the timeline is drawn again over the whole asset once GET asset/{task_id} tells its duration
    _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#query-results .timeline-figure")
          .get_attribute("data-asset-seconds"), "the timeline over the whole asset")
    top, want = browser.find_elements(By.CSS_SELECTOR, "#query-results article.match")[0], expected[0]
    assert float(top.find_element(By.CSS_SELECTOR, ".timeline-figure").get_attribute("data-asset-seconds")) \
        == pytest.approx(24.0, abs=0.5)
    assert "Launch day" in top.text
    segments = top.find_elements(By.CSS_SELECTOR, "svg.timeline g.segment")
    assert len(segments) == len(want["segments"]) >= 1
    seg = want["segments"][0]  # the copied stretch: query 4-12 s shows asset 8-16 s
    assert abs(seg["query_start"] - INSERTED_AT) <= 1.5 and abs(seg["match_start"] - EXCERPT[0]) <= 1.5
    caption = top.find_element(By.CSS_SELECTOR, "ul.segments li").text
    assert f"query {seg['query_start']:.1f} s–{seg['query_end']:.1f} s matches asset {seg['match_start']:.1f} s" in caption
    # the best segment's bars sit where its seconds are: the query bar starts about 4/18 of the way in
    bar = segments[0].find_element(By.CSS_SELECTOR, "rect.query-bar")
    track = top.find_element(By.CSS_SELECTOR, "svg.timeline rect.track")
    x0, w = float(track.get_attribute("x")), float(track.get_attribute("width"))
    q_end = max([answer["query"]["duration"]] + [s["query_end"] for s in want["segments"]])
    assert float(bar.get_attribute("x")) == pytest.approx(x0 + w * seg["query_start"] / q_end, abs=1.0)
    asset_bar = segments[0].find_element(By.CSS_SELECTOR, "rect.asset-bar")  # 8 s into the 24 s asset
    assert float(asset_bar.get_attribute("x")) == pytest.approx(x0 + w * seg["match_start"] / 24.0, abs=w * 0.03)
    frames = top.find_element(By.CSS_SELECTOR, "details.frames summary").text
    assert frames.startswith(f"{len(want['matches'])} frame matches")
    _no_page_errors(browser)
    shot = os.environ.get("VECSIM_CONSOLE_SCREENSHOT")
    if shot:
        _screenshot(browser, Path(shot))


def _screenshot(driver, path: Path) -> None:
    """The console's query section with the video result, as a PNG."""
    from selenium.webdriver.common.by import By

    path.parent.mkdir(parents=True, exist_ok=True)
    driver.execute_script("document.activeElement.blur(); document.querySelector('#query').scrollIntoView()")
    driver.find_element(By.ID, "query").screenshot(str(path))


def test_drop_a_file_and_paste_a_url(browser, service, media):
    """The drop box takes a dropped file (a DragEvent carrying a real DataTransfer, as a drag from
    the desktop delivers it) and queries at once; a pasted URL is queried by url, and the
    service's refusal of a loopback address is shown as it answers."""
    import base64

    from selenium.webdriver.common.by import By

    _log_in(browser, service)
    data = base64.b64encode(media["astronaut_crop"].read_bytes()).decode()
    browser.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "dropped.jpg", {type: "image/jpeg"}));
        const zone = document.getElementById("query-drop");
        zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: dt, bubbles: true, cancelable: true}));
        zone.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
    """, data)
    _wait(browser, lambda d: "dropped.jpg" in _text_of(d, "query-status"), "the dropped file's result")
    top = browser.find_elements(By.CSS_SELECTOR, "#query-results article.match")[0]
    assert top.get_attribute("data-task-id") == "astronaut-001"

    browser.execute_script("""
        const dt = new DataTransfer();
        dt.setData("text/plain", arguments[0]);
        document.getElementById("query-drop").dispatchEvent(
            new ClipboardEvent("paste", {clipboardData: dt, bubbles: true, cancelable: true}));
    """, "http://127.0.0.1:9/copy.jpg")
    _wait(browser, lambda d: "url_not_allowed" in _text_of(d, "query-status"), "the url's refusal")
    assert "HTTP 400" in _text_of(browser, "query-status")
    assert _by_id(browser, "query-url").get_attribute("value") == "http://127.0.0.1:9/copy.jpg"
    assert not browser.find_elements(By.CSS_SELECTOR, "#query-results article.match")
    _no_page_errors(browser)


def test_add_then_remove_an_asset_through_the_console(browser, service, media):
    _log_in(browser, service)
    # metadata that is not a JSON object is refused before anything is sent
    _by_id(browser, "add-file").send_keys(str(media["coffee"]))
    _by_id(browser, "add-task").send_keys("coffee-ui")
    _by_id(browser, "add-metadata").send_keys('["not", "an object"]')
    _by_id(browser, "add-button").click()
    assert "must be a JSON object" in _text_of(browser, "add-status")
    _by_id(browser, "add-metadata").clear()
    _by_id(browser, "add-metadata").send_keys('{"from": "console", "price": 4.5}')
    _by_id(browser, "add-button").click()
    _wait(browser, lambda d: "Added coffee-ui" in _text_of(d, "add-status"), "the add's result")
    top = _api_query(service, media["coffee"])["output"][0]
    assert top["task_id"] == "coffee-ui" and top["metadata"] == {"from": "console", "price": 4.5}
    # adding the same task id again shows the service's 409
    _by_id(browser, "add-file").send_keys(str(media["coffee"]))
    _by_id(browser, "add-task").send_keys("coffee-ui")
    _by_id(browser, "add-button").click()
    _wait(browser, lambda d: "409" in _text_of(d, "add-status"), "the 409 answer")
    assert "task_exists" in _text_of(browser, "add-status")

    _by_id(browser, "remove-task").send_keys("coffee-ui")
    _by_id(browser, "remove-button").click()
    _wait(browser, lambda d: "Removed coffee-ui" in _text_of(d, "remove-status"), "the remove's result")
    assert all(m["task_id"] != "coffee-ui" for m in _api_query(service, media["coffee"])["output"])
    _by_id(browser, "remove-task").send_keys("coffee-ui")
    _by_id(browser, "remove-button").click()
    _wait(browser, lambda d: "404" in _text_of(d, "remove-status"), "the 404 of a second remove")
    assert "task_not_found" in _text_of(browser, "remove-status")
    _no_page_errors(browser)


def test_keyboard_only_log_in_and_logout(browser, service):
    """The key field has the focus on load, Enter logs in, the focus moves to the query's file
    input; log out forgets the key."""
    from selenium.webdriver.common.keys import Keys

    _open(browser, service)
    active = browser.switch_to.active_element
    assert active.get_attribute("id") == "key"
    active.send_keys(service.key + Keys.ENTER)
    _wait(browser, lambda d: _by_id(d, "workspace").is_displayed(), "the workspace")
    assert browser.switch_to.active_element.get_attribute("id") == "query-file"
    _wait(browser, lambda d: _text_of(d, "who").startswith("Project shop · "), "the project in the header")
    _by_id(browser, "logout").click()
    assert _by_id(browser, "login").is_displayed() and not _by_id(browser, "workspace").is_displayed()
    assert browser.execute_script("return sessionStorage.length") == 0


def _api_pages(service, limit: int) -> list[list[dict]]:
    pages, after = [], None
    for _ in range(100):  # bounded: the project holds a dozen assets
        r = httpx.get(f"{service.url}{API}/custom_index/assets", params={"limit": limit, **({"after": after} if after else {})},
                      headers=auth(service.key), timeout=30)
        assert r.status_code == 200, r.text
        pages.append(r.json()["output"]["assets"])
        after = r.json()["output"]["next"]
        if after is None:
            return pages
    raise AssertionError("the asset list did not end")


def test_the_list_shows_the_assets_page_by_page(browser, service):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _log_in(browser, service)
    _wait(browser, lambda d: _text_of(d, "assets-status") not in ("", "Loading…"), "the first page of assets")
    assert _text_of(browser, "assets-status").startswith("Page 1: "), _text_of(browser, "assets-status")
    Select(_by_id(browser, "assets-size")).select_by_visible_text("10")
    expected = _api_pages(service, 10)
    assert len(expected) >= 2 and {VIDEO[0], *PHOTOS, *DISTRACTORS} <= {a["task_id"] for p in expected for a in p}

    def shown() -> list[str]:  # one read of the rows, so never half of a re-rendered page
        return browser.execute_script(
            "return [...document.querySelectorAll('#assets-rows tr')].map((r) => r.dataset.taskId)")

    for number, page in enumerate(expected, 1):
        _wait(browser, lambda d: _text_of(d, "assets-status").startswith(f"Page {number}:")
              and shown() == [a["task_id"] for a in page], f"page {number} of the list")
        assert _by_id(browser, "assets-next").is_enabled() == (number < len(expected))
        if number < len(expected):
            _by_id(browser, "assets-next").click()
    row = browser.find_element(By.CSS_SELECTOR, f'#assets-rows tr[data-task-id="{expected[-1][-1]["task_id"]}"]')
    want = expected[-1][-1]
    assert json.dumps(want["metadata"], separators=(",", ":")) in row.text and str(want["frames"]) in row.text
    _by_id(browser, "assets-prev").click()
    _wait(browser, lambda d: shown() == [a["task_id"] for a in expected[-2]], "the previous page again")
    video = next(a for p in expected for a in p if a["task_id"] == VIDEO[0])
    assert video["media_type"] == "video" and video["frames"] == 24
    _no_page_errors(browser)
