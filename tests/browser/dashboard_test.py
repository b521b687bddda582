#!/usr/bin/python3
"""The operator dashboard in headless Chromium (Debian's chromium + chromium-driver,
python3-selenium; no pip).

ctest mode:   dashboard_test.py NOEMA_BINARY BUILD_DIR
  generates `noema demo` into a temporary store, starts `noema serve` on a free loopback
  port with a known admin token, and checks the dashboard.
server mode:  dashboard_test.py --url http://127.0.0.1:PORT --token TOKEN --screenshot PNG
  checks an already running server (used while developing the page).

Fails on any browser console error (console.error, an uncaught exception, a failed load,
a Content-Security-Policy violation), when a chart did not render an <svg> with data marks,
when the static files lack their Content-Type or CSP, or when a bad token does not give
every chart an error message. Saves a screenshot (BUILD_DIR/dashboard.png in ctest mode).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common import utils as selenium_utils
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHARTS = ["active-users", "events", "funnel", "generations", "retention", "archetypes",
          "exp", "commands", "credit"]
ASSETS = {
    "/dashboard": "text/html",
    "/dashboard/dashboard.js": "text/javascript",
    "/dashboard/dashboard.css": "text/css",
    "/dashboard/favicon.svg": "image/svg+xml",
}
LOAD_TIMEOUT_S = 60
problems = []


def fail(message):
    print("FAIL: " + message)
    problems.append(message)


def ok(message):
    print("ok: " + message)


def check_static_files(base):
    for path, content_type in ASSETS.items():
        try:
            with urllib.request.urlopen(base + path, timeout=10) as reply:  # no token
                got = reply.headers.get("Content-Type", "")
                csp = reply.headers.get("Content-Security-Policy", "")
                if not got.startswith(content_type):
                    fail(f"{path}: Content-Type {got!r}, expected {content_type}")
                elif "default-src 'none'" not in csp or "script-src 'self'" not in csp:
                    fail(f"{path}: Content-Security-Policy is {csp!r}")
                else:
                    ok(f"{path} served without a token as {got}, with a strict CSP")
        except Exception as e:  # noqa: BLE001
            fail(f"{path}: {e}")
    try:
        urllib.request.urlopen(base + "/dashboard/no-such-file.js", timeout=10)
        fail("an unknown dashboard file was served")
    except urllib.error.HTTPError as e:
        if e.code == 404:
            ok("an unknown dashboard file is 404")
        else:
            fail(f"an unknown dashboard file gave HTTP {e.code}")
    except Exception as e:  # noqa: BLE001 (a dropped connection, a timeout)
        fail(f"an unknown dashboard file: {e}")


class LoopbackService(Service):
    """Selenium 4.8 reaches chromedriver at "localhost", which a minimal system may not
    resolve; the loopback address needs no name lookup."""

    @property
    def service_url(self):
        return f"http://127.0.0.1:{self.port}"

    def is_connectable(self):
        return selenium_utils.is_connectable(self.port, "127.0.0.1")


def browser(screenshot_dir):
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,2200", "--no-first-run", "--disable-extensions",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-default-apps", "--no-default-browser-check",
                 "--user-data-dir=" + os.path.join(screenshot_dir, "chromium-profile")]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = LoopbackService(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(service=service, options=options)


def wait_loaded(driver):
    WebDriverWait(driver, LOAD_TIMEOUT_S).until(
        lambda d: d.execute_script("return document.body.dataset.loaded === 'true'"))


def check_page(driver, base, token, screenshot):
    driver.get(base + "/dashboard#token=" + token)
    try:
        wait_loaded(driver)
    except Exception as e:  # a timeout: say which charts are still loading
        fail(f"the dashboard did not finish loading in {LOAD_TIMEOUT_S} s ({e.__class__.__name__})")
    errors = [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
    for entry in errors:
        fail("console error: " + entry.get("message", ""))
    if not errors:
        ok("no console errors")
    if "token=" in driver.current_url:
        fail("the token was left in the address bar: " + driver.current_url)
    else:
        ok("the token was taken out of the URL")
    for name in CHARTS:
        section = driver.find_element(By.CSS_SELECTOR, f'[data-chart="{name}"]')
        state = section.get_attribute("data-state")
        marks = section.find_elements(By.CSS_SELECTOR, ".chart svg .mark")
        if state != "ready":
            fail(f"chart {name}: state {state!r}: {section.text!r}")
        elif not marks:
            fail(f"chart {name}: no <svg> data marks: {section.text!r}")
        else:
            ok(f"chart {name}: {len(marks)} data marks")
    tiles = driver.find_elements(By.CSS_SELECTOR, "#kpis .kpi b")
    if len(tiles) < 5:
        fail(f"only {len(tiles)} totals shown")
    else:
        ok("totals: " + ", ".join(t.text for t in tiles))
    driver.save_screenshot(screenshot)
    ok("screenshot saved to " + screenshot)


def check_bad_token(driver, base):
    # Another query string, so that the browser loads the page again.
    driver.get(base + "/dashboard?check=bad-token#token=not-the-admin-token-0000")
    wait_loaded(driver)
    driver.get_log("browser")  # the 401s are expected here
    before = len(problems)
    for name in CHARTS:
        section = driver.find_element(By.CSS_SELECTOR, f'[data-chart="{name}"]')
        message = section.find_elements(By.CSS_SELECTOR, ".chart .message.error")
        if section.get_attribute("data-state") != "error" or not message:
            fail(f"chart {name}: no error message with a bad token")
        elif "401" not in message[0].text:
            fail(f"chart {name}: the error message does not say why: {message[0].text!r}")
    if len(problems) == before:
        ok("a bad token gives every chart an error message naming the reply")


def check_server(base, token, screenshot):
    check_static_files(base)
    work = tempfile.mkdtemp(prefix="noema-browser-")
    driver = browser(work)
    try:
        check_page(driver, base, token, screenshot)
        check_bad_token(driver, base)
    finally:
        driver.quit()
        shutil.rmtree(work, ignore_errors=True)


def run_with_demo(noema, build_dir):
    work = tempfile.mkdtemp(prefix="noema-dashboard-")
    store = "sqlite:" + os.path.join(work, "noema.db")
    token = "dashboard-test-admin-token-0123456789"
    server = None
    try:
        demo = subprocess.run([noema, "demo", "--store", store, "--users", "60", "--days", "45",
                               "--seed", "11"], capture_output=True, text=True, timeout=600)
        if demo.returncode != 0:
            fail("noema demo failed: " + demo.stderr)
            return
        ok(demo.stdout.strip())
        err_path = os.path.join(work, "serve.err")
        env = dict(os.environ)
        env.pop("NOEMA_STORE", None)
        with open(err_path, "w") as err:
            server = subprocess.Popen([noema, "serve", "--store", store, "--listen", "127.0.0.1:0",
                                       "--admin-token", token, "--quiet"],
                                      stdout=subprocess.DEVNULL, stderr=err, env=env)
        port = None
        for _ in range(200):
            with open(err_path) as err:
                found = re.search(r"serving on http://127\.0\.0\.1:(\d+)", err.read())
            if found:
                port = found.group(1)
                break
            if server.poll() is not None:
                break
            time.sleep(0.1)
        if port is None:
            with open(err_path) as err:
                fail("noema serve did not start: " + err.read())
            return
        check_server(f"http://127.0.0.1:{port}", token,
                     os.path.join(build_dir, "dashboard.png"))
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("noema", nargs="?")
    parser.add_argument("build_dir", nargs="?")
    parser.add_argument("--url")
    parser.add_argument("--token")
    parser.add_argument("--screenshot", default="dashboard.png")
    args = parser.parse_args()
    if args.url:
        if not args.token:
            parser.error("--url needs --token")
        check_server(args.url.rstrip("/"), args.token, args.screenshot)
    elif args.noema and args.build_dir:
        run_with_demo(args.noema, args.build_dir)
    else:
        parser.error("give NOEMA_BINARY BUILD_DIR, or --url and --token")
    print(f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
