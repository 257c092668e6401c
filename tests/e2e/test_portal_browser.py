"""The portal in a real browser: headless Chromium (Debian's, driven by Selenium through its
ChromeDriver; nothing is downloaded) against the international registry's own process, with
its e-mails read from a real local SMTP server. A focal point fills in the electronic form, an
administrator confirms the passcode and uploads a document, a secretariat officer validates;
the form pages are checked for accessibility basics (a label for every field, one heading,
the language, keyboard use).

Skipped where Chromium or ChromeDriver is missing, unless A6_REQUIRE_BROWSER=1 (.ci/run sets
it, having installed both). With A6_SCREENSHOTS=FOLDER, screenshots of each page are saved
there (``make portal-screenshots`` writes docs/portal/)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from demo.mailbox import LocalSmtp, link_in, passcode_in
from demo.network import INTERNATIONAL, SECRETARIAT, Network

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FOCAL = ("Wanjiru Kamau", "focal.point@ken.example")
ADMIN = ("Otieno Odhiambo", "otieno@ken.example")
LABELS_MISSING = """
return Array.from(document.querySelectorAll('input, select, textarea'))
  .filter(e => e.type !== 'hidden')
  .filter(e => !(e.id && document.querySelector('label[for="' + e.id + '"]'))
               && !e.getAttribute('aria-label'))
  .map(e => e.name || e.outerHTML);
"""


def browser_available() -> bool:
    found = Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()
    if not found and os.environ.get("A6_REQUIRE_BROWSER") == "1":
        pytest.fail("Chromium and ChromeDriver are required (A6_REQUIRE_BROWSER=1)")
    return found


pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() or os.environ.get("A6_REQUIRE_BROWSER") == "1"),
    reason="Debian's chromium and chromium-driver are not installed",
)


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[WebDriver]:
    assert browser_available()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1100,900",
                 f"--user-data-dir={tmp_path / 'chromium'}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


class Walk:
    """One person's browser on the portal, checking each form page as it goes."""

    def __init__(self, driver: WebDriver, base: str, smtp: LocalSmtp) -> None:
        self.driver, self.base, self.smtp = driver, base, smtp
        self.shots = (
            Path(os.environ["A6_SCREENSHOTS"]) if os.environ.get("A6_SCREENSHOTS") else None
        )

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def shot(self, name: str) -> None:
        if self.shots is not None:
            self.shots.mkdir(parents=True, exist_ok=True)
            self.driver.save_screenshot(str(self.shots / f"{name}.png"))

    def wait_for_text(self, text: str) -> None:
        """The next page has loaded, showing ``text`` (a click submits, then navigates)."""

        def shown(driver: WebDriver) -> bool:
            try:
                return text in driver.find_element(By.TAG_NAME, "main").text
            except StaleElementReferenceException:  # the page changed while it was read
                return False

        WebDriverWait(self.driver, 10).until(shown)

    def check_form_page(self) -> None:
        """A label for every field, one h1, the page's language."""
        driver = self.driver
        assert driver.execute_script(LABELS_MISSING) == [], driver.current_url
        assert len(driver.find_elements(By.TAG_NAME, "h1")) == 1, driver.current_url
        assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"

    def sign_in(self, email: str, shot: str = "") -> None:
        """By keyboard alone: type the address and Enter, the passcode and Enter."""
        self.driver.delete_all_cookies()
        self.open("/sign-in")
        self.check_form_page()
        field = self.driver.find_element(By.ID, "email")
        field.send_keys(email)
        if shot:
            self.shot(f"{shot}-sign-in")
        field.send_keys(Keys.ENTER)
        self.enter_passcode(email, shot)

    def enter_passcode(self, email: str, shot: str = "") -> None:
        code = self.driver.find_element(By.ID, "code")
        self.check_form_page()
        code.send_keys(passcode_in(self.smtp.wait_for(email, "passcode")))
        if shot:
            self.shot(f"{shot}-passcode")
        code.send_keys(Keys.ENTER)
        self.driver.find_element(By.XPATH, f"//span[contains(., '{email}')]")


def test_a_focal_point_an_administrator_and_the_secretariat_in_chromium(
    tmp_path: Path, chromium: WebDriver
) -> None:
    network = Network(tmp_path, registries=(INTERNATIONAL,))
    with network.running(), LocalSmtp(tmp_path / "mail", network.smtp_port) as smtp:
        network.registry_cli(INTERNATIONAL, "focal-point", "--party", "KEN",
                             "--email", FOCAL[1], "--name", FOCAL[0])  # fmt: skip
        walk = Walk(chromium, network.portal_url, smtp)
        walk.sign_in(FOCAL[1], shot="1-focal-point")
        chromium.find_element(By.LINK_TEXT, "Submit a Party Section Opening Request").click()
        chromium.find_element(By.ID, "name0")  # waits for the form
        walk.check_form_page()
        chromium.find_element(By.ID, "name0").send_keys(ADMIN[0])
        chromium.find_element(By.ID, "email0").send_keys(ADMIN[1])
        walk.shot("2-opening-request")
        chromium.find_element(By.ID, "email0").send_keys(Keys.ENTER)  # submits the form
        request_id = chromium.find_element(By.ID, "request-id").text
        assert request_id.startswith("REQ-")
        walk.shot("3-request-submitted")
        assert request_id in smtp.wait_for(ADMIN[1], "received").subject

        walk.sign_in(SECRETARIAT)
        walk.open("/secretariat")
        assert chromium.execute_script(LABELS_MISSING) == []  # several forms: labels checked
        walk.shot("4-secretariat-queue")
        chromium.find_element(
            By.XPATH,
            f"//form[contains(@action, '{request_id}/decision')]//button[@value='validate']",
        ).click()
        walk.wait_for_text("each administrator was sent a private upload link")

        chromium.delete_all_cookies()
        chromium.get(link_in(smtp.wait_for(ADMIN[1], "validated")))
        chromium.find_element(By.XPATH, "//button[text()='Send me a passcode']").click()
        walk.enter_passcode(ADMIN[1], shot="5-administrator")
        chromium.find_element(By.ID, "file")  # waits for the upload page
        assert chromium.current_url.endswith(f"/requests/{request_id}/documents")
        walk.check_form_page()
        nomination = tmp_path / "nomination.pdf"
        nomination.write_bytes(b"%PDF-1.4\n% signed nomination\n%%EOF\n")
        chromium.find_element(By.ID, "file").send_keys(str(nomination))
        walk.shot("6-upload")
        chromium.find_element(By.XPATH, "//button[text()='Upload']").click()
        walk.wait_for_text("nomination.pdf")
        assert chromium.current_url.endswith(f"/requests/{request_id}")
        walk.shot("7-request-with-documents")

        # Keyboard: from the e-mail field, Tab reaches the button, and a visible focus ring.
        chromium.delete_all_cookies()
        walk.open("/sign-in")
        chromium.find_element(By.ID, "email").click()
        chromium.switch_to.active_element.send_keys(Keys.TAB)
        focused = chromium.switch_to.active_element
        assert focused.tag_name == "button"
        assert focused.text == "Send me a passcode"
        walk.open("/access")
        walk.check_form_page()
