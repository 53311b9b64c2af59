"""Cross-origin attacks in real Chromium: a page on another port tries to drive the live page
with a no-cors ``text/plain`` fetch, a CORS fetch of JSON (preflighted), and plain HTML form
POSTs (``text/plain`` and urlencoded); every one is refused and the session is untouched."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.worker.runtimes.live.live_support import SlowTracker, chromium_driver, wait_until
from worker.runtimes.live.capture import Capture
from worker.runtimes.live.server import LiveServer
from worker.runtimes.live.session import LiveSession
from worker.runtimes.live.sources import SyntheticSource

_ATTACK_PAGE = """<!doctype html><html><head><title>attacker</title></head><body>
<form id="plain" method="POST" action="VICTIM/api/reset" enctype="text/plain">
  <input name='{"x": 10, "y": 10, "pad": "' value='"}'></form>
<form id="urlencoded" method="POST" action="VICTIM/api/remove">
  <input name="obj" value="1"></form>
<script>
const done = [];
fetch("VICTIM/api/click", {method: "POST", mode: "no-cors",
      headers: {"Content-Type": "text/plain"}, body: JSON.stringify({x: 20, y: 20})})
  .then(() => done.push("no-cors sent"), () => done.push("no-cors failed"))
  .then(() => fetch("VICTIM/api/objects", {method: "POST", mode: "cors",
      headers: {"Content-Type": "application/json"}, body: "{}"}))
  .then(() => done.push("cors allowed"), () => done.push("cors blocked"))
  .then(() => { document.title = done.join(", "); });
</script></body></html>"""


@contextmanager
def _attacker(victim: str) -> Iterator[str]:
    page = _ATTACK_PAGE.replace("VICTIM", victim.rstrip("/")).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_another_origin_cannot_drive_the_page_in_chromium(tmp_path: Path) -> None:
    tracker = SlowTracker(0.01)
    session = LiveSession(Capture(SyntheticSource(320, 240, 30, None)), lambda: tracker)
    driver = chromium_driver(tmp_path / "profile")
    try:
        with session, LiveServer(session) as server, _attacker(server.base_url) as attacker:
            assert session.controls.click(None, 100, 100) == 1  # the user's own object
            assert wait_until(lambda: [o.obj_id for o in session.state().objects] == [1], 20)
            driver.get(attacker)
            title = wait_until(lambda: driver.title if "," in driver.title else None, 20)
            # (the browser may also hide the refusal's answer from the no-cors fetch: CORP)
            assert title in ("no-cors sent, cors blocked", "no-cors failed, cors blocked")
            assert wait_until(lambda: server.refused[415] >= 2, 10)  # no-cors POST, preflight
            for form in ("plain", "urlencoded"):
                driver.get(attacker)
                driver.execute_script(f"document.getElementById('{form}').submit()")
                text = wait_until(lambda: "refused" in driver.page_source and driver.page_source,
                                  20)  # fmt: skip
                assert text and "application/json" in text, form
            assert server.refused[415] >= 4  # and both forms
            assert session.controls.objects == [1]
            assert [p.obj_id for p in tracker.prompts] == [1] and len(tracker.prompts) == 1
            assert [o.obj_id for o in session.state().objects] == [1]
    finally:
        driver.quit()
