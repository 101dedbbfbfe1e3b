"""The dashboard in a real headless browser: log in, find a timeline, retry a dead letter;
every page at a desktop and a phone width, with screenshots.

Uses Debian's chromium and chromedriver (``apt-get install chromium chromium-driver``);
the driver path is passed explicitly so Selenium Manager never downloads anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from receiver import Context, Event, Registry

from ..conftest import delivery, running
from .test_admin import PASSWORD, admin_settings, query

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(
        f"needs {CHROMIUM} and {CHROMEDRIVER}: apt-get install -y chromium chromium-driver",
        allow_module_level=True,
    )

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Headless chromium with a throw-away profile and nothing phoning home."""
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager, were it ever asked: no network
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace for the sandbox
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def test_log_in_find_timeline_retry_dead_letter(tmp_path: Path, browser: Any) -> None:
    """An operator logs in, filters the events by number, opens the message's timeline,
    retries its dead letter and sees it done."""
    SCREENSHOTS = tmp_path
    crm_down = True

    registry = Registry()

    @registry.on("delivery-status.delivery-failed")
    async def notify_crm(event: Event, ctx: Context) -> None:
        if crm_down:
            raise RuntimeError("CRM is down")

    settings = admin_settings(tmp_path)
    with running(settings, registry) as server:
        for message_id, status, number in (
            (4242, 1, "+15550004242"),
            (4242, 3, "+15550004242"),
            (4242, 6, "+15550004242"),
            (4242, 6, "+15550004242"),  # a duplicate
            (5151, 4, "+15550005151"),
        ):
            response = server.post(delivery(message_id, status, destinationNumber=number))
            assert response.status_code == 200

        def dead() -> list[tuple[Any, ...]]:
            return query(settings, "SELECT id FROM events WHERE state = 'dead'")

        wait = WebDriverWait(browser, 10)
        wait.until(lambda _: dead())
        [(event_id,)] = dead()

        browser.get(f"{server.url}/admin/")
        wait.until(lambda b: "/admin/login" in b.current_url)
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "form.login button").click()
        wait.until(lambda b: b.find_elements(By.ID, f"dead-{event_id}"))
        browser.save_screenshot(str(SCREENSHOTS / "admin-overview.png"))

        browser.find_element(By.LINK_TEXT, "Events").click()
        number = wait.until(lambda b: b.find_element(By.NAME, "number"))
        number.send_keys("555-000-4242")
        browser.find_element(By.CSS_SELECTOR, "form.filters button").click()
        wait.until(lambda b: "number=555-000-4242" in b.current_url)
        messages = "table.events a[href*='/messages/']"
        links = {a.text for a in browser.find_elements(By.CSS_SELECTOR, messages)}
        assert links == {"4242"}
        browser.find_element(By.LINK_TEXT, "4242").click()

        row = wait.until(lambda b: b.find_element(By.ID, f"event-{event_id}"))
        page = browser.find_element(By.TAG_NAME, "main").text
        for status in ("1 queued", "3 sent", "6 delivery-failed"):
            assert status in page
        assert "dead" in row.text
        assert "CRM is down" in row.text
        assert "***42" in page
        assert "+15550004242" not in page
        browser.save_screenshot(str(SCREENSHOTS / "admin-timeline-dead.png"))

        crm_down = False
        row.find_element(By.CSS_SELECTOR, "button").click()
        flash = wait.until(lambda b: b.find_element(By.CSS_SELECTOR, ".flash"))
        assert f"Event {event_id} is pending again." in flash.text

        def shows_done(b: Any) -> bool:
            b.refresh()
            return "done" in b.find_element(By.ID, f"event-{event_id}").text

        wait.until(shows_done)
        browser.save_screenshot(str(SCREENSHOTS / "admin-timeline-done.png"))
        assert query(settings, "SELECT state FROM events WHERE id = ?", (event_id,)) == [("done",)]
        assert os.path.getsize(SCREENSHOTS / "admin-timeline-done.png") > 0


WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
ONE_LINE_IDS = """
return Array.from(document.querySelectorAll('.id')).filter(e => {
  const text = document.createRange();
  text.selectNodeContents(e);
  return new Set(Array.from(text.getClientRects()).map(r => Math.round(r.top))).size > 1;
}).map(e => e.textContent);
"""
WIDE = "return document.documentElement.scrollWidth - window.innerWidth;"
WEIGHT = (
    "const n = performance.getEntriesByType('navigation')[0];"
    " return [n.transferSize, n.decodedBodySize, performance.getEntriesByType('resource').length];"
)


def test_every_page_at_desktop_and_phone_width(tmp_path: Path, browser: Any) -> None:
    """Overview (charts), events, a timeline, event pages of each kind and the Drop
    confirmation render at 1280 and 390 px: no page wider than
    the window, no id broken over lines, nothing fetched besides the page itself."""
    registry = Registry()

    @registry.on("delivery-status.delivery-failed")
    async def notify_crm_with_a_long_handler_name(event: Event, ctx: Context) -> None:
        raise RuntimeError("CRM is down: connection refused by crm.internal.example:8443")

    settings = admin_settings(tmp_path)
    with running(settings, registry) as server:
        for message_id, status in ((11, 3), (11, 6), (12, 4), (13, 9)):
            assert server.post(delivery(message_id, status)).status_code == 200
        server.post(
            {"fromNumber": "+15555550123", "message": "Yes", "replyId": 7}, event="message-reply"
        )
        server.post({"optInType": "imessage", "fromNumber": "+15555550123"}, event="number-opt-in")
        server.post({"type": "receiver-test", "testId": "t1"})
        server.post(b"not json")
        query(
            settings,
            "INSERT INTO resends (original_message_id, state, reason, phone, external_id,"
            " request_id, failed_at, due_at, updated_at) VALUES ('11', 'unknown', 'no webhook',"
            " '+15550001111', 'x.11', 'r', 1, 1, strftime('%s', 'now'))",
        )
        wait = WebDriverWait(browser, 10)
        wait.until(lambda _: query(settings, "SELECT 1 FROM events WHERE state = 'dead'"))
        events = dict(query(settings, "SELECT name, id FROM events"))

        browser.get(f"{server.url}/admin/login")
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "form.login button").click()
        wait.until(lambda b: b.find_elements(By.ID, "charts"))
        pages = {
            "overview": "/admin/",
            "overview-7d": "/admin/?range=7d",
            "events": "/admin/events",
            "timeline": "/admin/messages/11",
            "event-dead": f"/admin/events/{events['delivery-status.delivery-failed']}",
            "event-opt-in": f"/admin/events/{events['number-opt-in']}",
            "event-test": f"/admin/events/{events['unknown']}",
            "drop": "/admin/resends/11/drop?next=/admin/",
        }
        if "quarantined" in events:  # its name when the body is not JSON
            pages["event-quarantined"] = f"/admin/events/{events['quarantined']}"
        weights = {}
        for width, size in WIDTHS.items():
            browser.set_window_size(*size)
            for name, path in pages.items():
                browser.get(server.url + path)
                assert "Internal Server Error" not in browser.page_source
                assert browser.execute_script(ONE_LINE_IDS) == [], (width, name)
                assert browser.execute_script(WIDE) <= 0, (width, name)
                _, body, fetched = browser.execute_script(WEIGHT)
                assert fetched == 0, (width, name)  # no script, font, image or stylesheet
                weights[name] = body
                if name == "drop":
                    assert "the person gets no message at all" in browser.page_source
                browser.save_screenshot(str(tmp_path / f"{name}-{width}.png"))
        assert weights["overview"] < 60_000
        print("page weight (bytes of HTML, nothing else is fetched):", weights)
