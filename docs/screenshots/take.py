"""Screenshots of the admin for the README, taken from a running Clicktrail at 1440×900.

    make run   # or any running instance with the demo data
    .venv/bin/python docs/screenshots/take.py --base-url http://127.0.0.1:8000 \
        --username admin --password '…' [--offer 1]

Drives Debian's Chromium (/usr/bin/chromium) with Playwright: the home page, the event
records list, the Reports page, the offer page's tabs and the event form. It makes one test
click on the offer (to show a dry run) and records nothing else.
"""

import argparse
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

HERE = Path(__file__).resolve().parent
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TABS = [
    ("General", "offer-general.png"),
    ("Tracking", "offer-tracking.png"),
    ("Revenue & Payout", "offer-revenue-payout.png"),
    ("Test postback", "offer-test-postback.png"),
]


def shoot(page: Page, name: str, *, full_page: bool = True) -> None:
    page.screenshot(path=str(HERE / name), full_page=full_page)
    print(f"wrote docs/screenshots/{name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", required=True)
    parser.add_argument("--offer", type=int, default=1, help="offer ID (demo: 1)")
    args = parser.parse_args()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(
            base_url=args.base_url, viewport={"width": 1440, "height": 900}, color_scheme="light"
        )
        page = context.new_page()
        page.goto("/admin/login/")
        page.fill("#id_username", args.username)
        page.fill("#id_password", args.password)
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/")

        shoot(page, "admin-home.png")
        page.goto("/admin/tracking/eventrecord/")
        shoot(page, "event-records.png", full_page=False)
        page.goto("/admin/tracking/eventrecord/reports/")
        page.wait_for_function("window.clicktrailCharts && window.clicktrailCharts.length > 0")
        shoot(page, "reports.png", full_page=False)

        offer_url = f"/admin/offers/offer/{args.offer}/change/"
        page.goto(offer_url)
        for title, name in TABS:
            page.get_by_role("tab", name=title).click()
            if title == "Tracking":
                page.locator("#ct-tracking-publisher").select_option(index=1)
                page.locator("#ct-sub-aff_sub").fill("spring-campaign")
                page.locator("#ct-sub-source").fill("newsletter")
            if title == "Test postback":
                page.get_by_role("button", name="Make a test click").click()
                page.locator("[data-test-click-info]").filter(has_text="Test click made").wait_for()
                page.get_by_role("button", name="Check (dry run)").click()
                page.locator("[data-test-verdict]").filter(has_text="Dry run").wait_for()
            shoot(page, name)

        page.goto(f"/admin/offers/event/add/?offer={args.offer}")
        page.get_by_label("Event name").fill("in_app_purchase")
        page.get_by_label("Allow multiple events with the same click ID").check()
        page.get_by_role("button", name="AppsFlyer", exact=True).click()
        shoot(page, "event-create.png")
        browser.close()


if __name__ == "__main__":
    main()
