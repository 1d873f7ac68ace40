"""Screenshot of a running kedro-viz in headless Chromium (how docs/img/kedro-viz-*.png were made).

Not a project dependency: needs Debian's Chromium (`apt-get install chromium`) and Playwright's Python
package in any environment (`pip install playwright`; the browser download is not needed, the system
Chromium is used). Start kedro-viz first (`make viz`), then:

    python scripts/viz_screenshot.py "http://127.0.0.1:4141/?pid=ehr&expandAllPipelines=true" out.png

Chromium runs with background networking off: nothing is fetched from outside the machine.
"""

from __future__ import annotations

import argparse

from playwright.sync_api import sync_playwright

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=FLAGS)
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        # kedro-viz keeps its settings in localStorage: no feature tour, light theme for print
        page.add_init_script(
            "localStorage.setItem('KedroViz', JSON.stringify("
            "{showFeatureHints: false, theme: 'light', isPrettyName: false}))"
        )
        page.goto(args.url)
        page.wait_for_selector(".pipeline-node", timeout=60_000)  # the graph has rendered
        page.wait_for_timeout(2_000)
        for button in page.get_by_role("button", name="Dismiss").all():  # the version banner
            if button.is_visible():
                button.click()
        page.wait_for_timeout(500)
        page.screenshot(path=args.out)
        browser.close()


if __name__ == "__main__":
    main()
