"""Take the dashboard's screenshots in docs/screenshots/ (README shows them) from a real sweep.

Runs a 40-job random sweep of examples/metrics/train.py in a temporary data dir, serves it with
`hyperctl ui`, and saves each page as Debian's headless Chromium draws it (as the tests do):

    python docs/screenshots.py [--output docs/screenshots]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/lib/chromium/chromium-headless-shell"
TEMPLATE = {
    "name": "lr-width",
    "strategy": "random",
    "num_trials": 40,
    "seed": 7,
    "params": {"lr": {"loguniform": [0.001, 1.0]}, "width": [16, 32, 64, 128]},
    "execution": {"command": f"{sys.executable} {REPO / 'examples' / 'metrics' / 'train.py'}"},
    "backend": {"type": "local", "conf": {"cpu": 2}},
    "scheduler": {"objective": "max acc"},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "screenshots")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hyperctl-screenshots-") as tmp:
        env = {**os.environ, "HYPERCTL_BATCHES_DATA_DIR": f"{tmp}/batches", "XDG_STATE_HOME": f"{tmp}/state"}
        template = Path(tmp) / "sweep.json"
        template.write_text(json.dumps(TEMPLATE))
        done = subprocess.run(
            [sys.executable, "-m", "hyperctl", "run", "--template", str(template)], env=env, capture_output=True
        )
        if done.returncode != 0:
            sys.exit(f"the sweep failed: {done.stderr.decode()[-500:]}")
        ui = subprocess.Popen(
            [sys.executable, "-m", "hyperctl", "ui", "--port", "0"], env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            assert ui.stdout is not None
            found = re.search(r"(http://\S+/login\?token=\S+)", ui.stdout.readline())
            if not found:
                sys.exit("hyperctl ui printed no link")
            link = found.group(1)
            base = link.split("/login", 1)[0]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(link)
                shots = {
                    "batches": "/",
                    "batch": "/b/lr-width?sort=-acc",
                    "params": "/b/lr-width/params",
                }
                for name, path in shots.items():
                    page.goto(base + path, wait_until="networkidle")
                    if name == "batch":  # its machines part comes after the page (it samples what jobs use)
                        page.wait_for_selector("#machine-table")
                    page.screenshot(path=str(args.output / f"{name}.png"), full_page=name != "batch")
                page.goto(base + "/b/lr-width?sort=-acc", wait_until="networkidle")
                rows = page.locator("#job-table tbody tr")
                top = rows.evaluate_all("rows => rows.slice(0, 5).map(r => r.dataset.job)")
                page.goto(f"{base}/b/lr-width/j/{top[0]}", wait_until="networkidle")
                page.screenshot(path=str(args.output / "job.png"), full_page=True)
                page.goto(f"{base}/b/lr-width/curves?jobs={','.join(top)}&metric=loss", wait_until="networkidle")
                page.screenshot(path=str(args.output / "curves.png"), full_page=True)
                browser.close()
        finally:
            ui.terminate()
            ui.wait(timeout=10)
    for png in sorted(args.output.glob("*.png")):
        print(png.relative_to(REPO) if png.is_relative_to(REPO) else png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
