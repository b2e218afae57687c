"""The web dashboard, as a person sees it: a real headless Chromium loads each page of a live
cluster running a workload and reads what is on the screen; and, over plain HTTP, that nothing
is served without the cluster token."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import psutil
import pytest

from tests.conftest import (
    assert_no_leaks,
    child_processes_running,
    zray_segments,
    zray_sessions,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT_MS = 20_000


def token_of_cluster() -> str:
    from zray._private.core import runtime

    return runtime.core.creds.token


def http(url: str, headers: dict | None = None, follow: bool = True):
    """(status, headers, body) of a GET, redirects not followed unless `follow`."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(*([] if follow else [NoRedirect()]))
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """An embedded two-CPU cluster whose dashboard has a port of its own: the default range
    (8265 and the 50 after it) may be taken by other clusters of this machine."""
    import zray

    before_segments, before_sessions = zray_segments(), zray_sessions()
    context = zray.init(num_cpus=2, dashboard_port=free_port(), include_dashboard=True)
    yield zray, "http://" + context.dashboard_url, token_of_cluster()
    zray.shutdown()
    assert_no_leaks(before_segments, before_sessions)


@pytest.fixture(scope="module")
def browser(cluster):
    if CHROMIUM is None:
        pytest.skip(
            "NO CHROMIUM: the dashboard's browser tests need Debian's `chromium` "
            "(apt-get install -y chromium chromium-driver; .ci/run installs it)"
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="NO PLAYWRIGHT: pip install -e '.[test]'"
    )
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, cluster):
    """A signed-in tab: opened once with the token URL, as from `zray start`'s output."""
    _, base, token = cluster
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    tab.goto(f"{base}/?token={token}#/overview")
    yield tab
    context.close()


def rows_with(tab, table: str, text: str):
    return tab.locator(f"#{table} tbody tr", has_text=text)


# ---------------------------------------------------------------------------- the token


def test_every_request_without_the_token_gets_401_and_nothing_else(cluster):
    _, base, token = cluster
    for path in ("/", "/static/app.js", "/api/version", "/api/v0/actors", "/api/cluster", "/x"):
        status, _, body = http(base + path)
        assert (status, body) == (401, b"401: Unauthorized"), path
        status, _, body = http(base + path, {"Authorization": "Bearer not-the-token"})
        assert (status, body) == (401, b"401: Unauthorized"), path
    status, _, body = http(base + "/?token=wrong")
    assert (status, body) == (401, b"401: Unauthorized")


def test_the_token_in_the_url_becomes_an_http_only_cookie_and_leaves_the_url(cluster):
    _, base, token = cluster
    status, headers, _ = http(f"{base}/?token={token}#/actors", follow=False)
    assert status == 302
    assert headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and token not in cookie
    name_value = cookie.split(";")[0]
    status, _, body = http(base + "/api/version", {"Cookie": name_value})
    assert status == 200 and json.loads(body)["ray_version"] == "2.60.0"
    status, _, _ = http(base + "/api/version", {"Cookie": name_value + "x"})
    assert status == 401


def test_rays_state_endpoints_answer_with_a_bearer_token(cluster):
    ray, base, token = cluster

    @ray.remote
    class Probe:
        def ping(self):
            return 1

    probe = Probe.options(name="probe-actor").remote()
    ray.get(probe.ping.remote())
    auth = {"Authorization": f"Bearer {token}"}
    query = "filter_keys=name&filter_predicates==&filter_values=probe-actor&detail=true"
    status, _, body = http(f"{base}/api/v0/actors?{query}", auth)
    reply = json.loads(body)
    assert status == 200 and reply["result"] is True and reply["msg"] == ""
    rows = reply["data"]["result"]["result"]
    assert [(r["name"], r["state"], r["class_name"]) for r in rows] == [
        ("probe-actor", "ALIVE", "Probe")
    ]
    status, _, body = http(f"{base}/api/v0/actors?limit=100000", auth)
    assert status == 400 and "exceeds the supported limit" in json.loads(body)["msg"]
    status, _, body = http(f"{base}/api/v0/actors/summarize", auth)
    summary = json.loads(body)["data"]["result"]["result"]["node_id_to_summary"]
    assert summary["cluster"]["summary"]["Probe"]["state_counts"] == {"ALIVE": 1}
    ray.kill(probe)


# ---------------------------------------------------------------------------- the pages


def test_the_printed_url_signs_in_and_the_overview_shows_the_node(page):
    assert "token=" not in page.url  # cleaned from the address bar (and history)
    page.wait_for_selector("#node-count")
    assert page.locator("#node-count .value").inner_text() == "1"
    node_row = page.locator("#nodes tbody tr")
    assert node_row.count() == 1
    assert "ALIVE" in node_row.inner_text() and "(head)" in node_row.inner_text()
    assert re.search(r"\d / 2", node_row.inner_text())  # the two CPUs, with their use
    # The machine's memory in use is drawn as a bar (a style the page's CSP must let through).
    memory_fill = node_row.locator(".fill").nth(1)
    assert memory_fill.evaluate("e => e.getBoundingClientRect().width") > 0


def test_an_actor_turns_from_alive_to_dead_on_the_open_page(page, cluster):
    ray = cluster[0]

    @ray.remote
    class Watched:
        def ping(self):
            return 1

    name = "watched-<b>actor</b>"  # cluster data is shown as text, never as markup
    actor = Watched.options(name=name).remote()
    ray.get(actor.ping.remote())
    page.goto(page.url.split("#")[0] + "#/actors")
    row = rows_with(page, "actors", name)
    row.locator("td.state-ALIVE").wait_for()
    assert row.locator("b").count() == 0
    ray.kill(actor)
    row.locator("td.state-DEAD").wait_for()  # the same page, polled: no reload
    assert "killed by `ray.kill`" in row.inner_text()


def test_a_failed_actor_links_to_its_traceback(page, cluster):
    ray = cluster[0]

    @ray.remote
    class Broken:
        def __init__(self):
            raise ValueError("the constructor failed on purpose")

        def ping(self):
            return 1

    broken = Broken.options(name="broken-actor").remote()
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(broken.ping.remote(), timeout=30)
    page.goto(page.url.split("#")[0] + "#/actors")
    link = rows_with(page, "actors", "broken-actor").locator("a.traceback-link")
    link.wait_for()
    assert link.inner_text() == "ValueError: the constructor failed on purpose"
    link.click()
    traceback = page.locator("#traceback")
    traceback.wait_for()
    text = traceback.inner_text()
    assert "Broken.__init__" in text and "line" in text and 'raise ValueError("the con' in text
    assert page.locator("#actor-state").inner_text() == "DEAD"


def test_a_log_line_appears_in_the_live_tail(page, cluster):
    ray = cluster[0]

    @ray.remote
    class Talker:
        def say(self, text):
            print(text, flush=True)
            return os.getpid()

    talker = Talker.remote()
    pid = ray.get(talker.say.remote("first line from the talker"))
    page.goto(page.url.split("#")[0] + "#/logs")
    link = page.locator(f"#log-files a[data-file$='-{pid}.out']")
    link.wait_for()
    link.click()
    log = page.locator("#log-text")
    log.filter(has_text="first line from the talker").wait_for()
    ray.get(talker.say.remote("a later line, while the page is open"))
    log.filter(has_text="a later line, while the page is open").wait_for()
    assert "first line from the talker" in log.inner_text()
    ray.kill(talker)


def test_jobs_placement_groups_objects_and_tasks_pages(page, cluster):
    ray = cluster[0]
    import numpy as np

    from zray.util.placement_group import placement_group, remove_placement_group

    base = page.url.split("#")[0]
    page.goto(base + "#/jobs")
    job_id = ray.get_runtime_context().get_job_id()
    rows_with(page, "jobs", job_id).locator("td.state-RUNNING").wait_for()

    group = placement_group([{"CPU": 0.5}], name="shown-group")
    ray.get(group.ready(), timeout=30)
    page.goto(base + "#/placement-groups")
    rows_with(page, "placement-groups", "shown-group").locator("td.state-CREATED").wait_for()
    remove_placement_group(group)

    ref = ray.put(np.zeros(2**20, dtype=np.uint8))  # 1 MiB: in the shared-memory store
    page.goto(base + "#/objects")
    row = rows_with(page, "objects", ref.hex())
    row.wait_for()
    assert "1.0 MiB" in row.inner_text() and "LOCAL_REFERENCE" in row.inner_text()

    del ref


def test_a_failed_task_shows_its_error_and_links_to_its_traceback(page, cluster):
    ray = cluster[0]

    @ray.remote(max_retries=0)
    def fails_on_purpose():
        raise KeyError("the task failed on purpose")

    with pytest.raises(KeyError):
        ray.get(fails_on_purpose.remote(), timeout=30)
    page.goto(page.url.split("#")[0] + "#/tasks")
    row = rows_with(page, "tasks", "fails_on_purpose")
    row.locator("td.state-FAILED").wait_for()  # task events reach the head within a second
    link = row.locator("a.traceback-link")
    assert link.inner_text() == "TASK_EXECUTION_EXCEPTION"
    link.click()
    traceback = page.locator("#traceback")
    traceback.wait_for()
    assert "the task failed on purpose" in traceback.inner_text()
    assert "fails_on_purpose" in traceback.inner_text()


def test_long_tables_show_their_first_500_rows_and_say_so(page, cluster):
    ray = cluster[0]
    refs = [ray.put(i) for i in range(600)]
    page.goto(page.url.split("#")[0] + "#/objects")
    page.locator("p.capped", has_text="Showing the first 500 of").wait_for()
    assert page.locator("#objects tbody tr").count() == 500
    assert int(page.locator("#reference-count .value").inner_text()) >= 600
    del refs


def test_a_browser_without_the_token_sees_401(browser, cluster):
    _, base, _ = cluster
    context = browser.new_context()
    try:
        tab = context.new_page()
        response = tab.goto(base + "/#/actors")
        assert response.status == 401
        assert tab.locator("body").inner_text().strip() == "401: Unauthorized"
    finally:
        context.close()


def test_a_dashboard_that_died_starts_again_on_the_next_request(cluster):
    _, base, token = cluster
    auth = {"Authorization": f"Bearer {token}"}
    assert http(base + "/api/version", auth)[0] == 200
    dashboards = child_processes_running("zray.dashboard")
    assert len(dashboards) == 1
    dashboards[0].kill()
    dashboards[0].wait(10)
    deadline = time.monotonic() + 30
    while True:  # the node notices within its client check (0.5 s), then arms the socket
        try:
            status = http(base + "/api/version", auth)[0]
        except (ConnectionError, urllib.error.URLError):
            status = None
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200


# ---------------------------------------------------------------------------- start-up


SECOND_NODE_TASK = """
import os
import zray as ray
ray.init(address={address!r})
@ray.remote(resources={{"second": 1}})
def hello():
    print("hello from the second node", flush=True)
    return os.getpid()
print(ray.get(hello.remote(), timeout=60))
"""


def test_zray_start_head_prints_a_dashboard_url_that_opens_in_a_browser(browser):
    """... and shows the cluster's nodes, and the logs of a node on another address."""
    import tempfile

    root = tempfile.mkdtemp(prefix="zt", dir="/tmp")  # Unix socket paths must stay short
    env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=root)

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "zray.scripts.cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )

    session_name = "?"
    try:
        started = cli(
            "start", "--head", "--port", "0", "--num-cpus", "1", f"--dashboard-port={free_port()}"
        )
        assert started.returncode == 0, started.stderr
        url = re.search(r"View the dashboard at (\S+)", started.stdout).group(1)
        session_name = os.path.basename(re.search(r" in (\S+)", started.stdout).group(1))
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=\S+", url), url
        # Started with the cluster, not at the first request: the URL was printed to be opened.
        deadline = time.monotonic() + 10
        while not [
            p
            for p in psutil.process_iter(["cmdline"])
            if "zray.dashboard" in " ".join(p.info["cmdline"] or [])
            and root in " ".join(p.info["cmdline"] or [])
        ]:
            assert time.monotonic() < deadline, "zray start --head started no dashboard"
            time.sleep(0.1)
        address = re.search(r"Head address: (\S+)", started.stdout).group(1)
        # A node advertising another loopback address stands for another machine.
        joined = cli(
            "start",
            f"--address={address}",
            "--num-cpus",
            "1",
            "--resources",
            '{"second": 1}',
            "--node-ip-address",
            "127.0.0.2",
        )
        assert joined.returncode == 0, joined.stderr
        ran = subprocess.run(
            [sys.executable, "-c", SECOND_NODE_TASK.format(address=address)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert ran.returncode == 0, ran.stderr
        pid = int(ran.stdout.split()[-1])
        context = browser.new_context()
        try:
            tab = context.new_page()
            tab.set_default_timeout(TIMEOUT_MS)
            tab.goto(url)
            tab.locator("#node-count .value", has_text="2").wait_for()
            assert "token=" not in tab.url
            tab.goto(url.split("?")[0] + "#/logs")
            link = tab.locator(f"#log-files a[data-file$='-{pid}.out']")
            link.wait_for()
            assert link.inner_text().startswith("127.0.0.2 ")
            link.click()
            tab.locator("#log-text", has_text="hello from the second node").wait_for()
        finally:
            context.close()
    finally:
        stopped = cli("stop")
        shutil.rmtree(root, ignore_errors=True)
    assert stopped.returncode == 0, stopped.stderr
    # The daemon was not our child (zray start detaches it): look for its dashboard by the
    # session root on its command line, and at the port.
    deadline = time.monotonic() + 10
    while [
        p for p in psutil.process_iter(["cmdline"]) if root in " ".join(p.info["cmdline"] or [])
    ]:
        assert time.monotonic() < deadline, "the dashboard outlived `zray stop`"
        time.sleep(0.1)
    with pytest.raises((ConnectionError, urllib.error.URLError)):
        http(url.split("?")[0] + "api/version")
    assert not [s for s in zray_segments() if s.startswith(f"zray-{session_name}-")]


def test_the_tasks_page_shows_a_page_at_a_time_filters_by_state_and_updates_live(page, cluster):
    ray = cluster[0]

    @ray.remote
    def paged_task(i):
        return i

    @ray.remote(max_retries=0)
    def fails_while_watched(i):
        raise ValueError(i)

    assert ray.get([paged_task.remote(i) for i in range(250)], timeout=120) == list(range(250))
    with pytest.raises(ValueError):
        ray.get(fails_while_watched.remote(1), timeout=60)
    base = page.url.split("#")[0]
    page.goto(base + "#/tasks")
    counted = page.locator("#task-range", has_text=re.compile(r"^1-100 of (2[5-9]\d|[3-9]\d\d)"))
    counted.wait_for()  # every task's events in: 251 or more (other tests' tasks too)
    assert page.locator("#tasks tbody tr").count() == 100
    page.click("#tasks-next")
    page.locator("#task-range", has_text=re.compile(r"^101-200 of")).wait_for()
    assert page.locator("#tasks tbody tr").count() == 100

    page.select_option("#task-state", "FAILED")
    page.locator("#task-range", has_text=re.compile(r"^1-\d+ of")).wait_for()
    rows_with(page, "tasks", "fails_while_watched").wait_for()
    assert page.locator("#tasks tbody tr td.state-FINISHED").count() == 0
    # Live: a task failing now appears on the open page at its next poll.
    before = rows_with(page, "tasks", "fails_while_watched").count()
    with pytest.raises(ValueError):
        ray.get(fails_while_watched.remote(2), timeout=60)
    deadline = time.monotonic() + 30
    while rows_with(page, "tasks", "fails_while_watched").count() == before:
        assert time.monotonic() < deadline, "the failed task did not appear"
        time.sleep(0.2)


def test_the_tasks_endpoint_refuses_a_page_out_of_bounds(cluster):
    _, base, token = cluster
    headers = {"Authorization": f"Bearer {token}"}
    status, _, body = http(base + "/api/tasks?offset=0&limit=5", headers)
    assert status == 200 and len(json.loads(body)["data"]["result"]["result"]) <= 5
    for query in ("offset=-1", "limit=0", "limit=1001", "offset=9950&limit=100", "limit=x"):
        status, _, body = http(f"{base}/api/tasks?{query}", headers)
        assert status == 400, query
