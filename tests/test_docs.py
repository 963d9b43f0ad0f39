"""The documentation site (`vlnotes docs`): built offline from the notebooks; every notebook has a page and every
internal link resolves; in headless Chromium the math is typeset by KaTeX, figures load, the console is clean and
no request leaves 127.0.0.1.

Skips (with the reason) when the docs dependencies, KaTeX (npm) or Chromium are not installed."""
import base64, functools, html, html.parser, json, os, re, shutil, subprocess, threading, time, urllib.parse, urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docs, pytest.mark.xdist_group("docs")]   # one worker builds the site once
ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    for mod in ("mkdocs", "material", "mkdocs_jupyter", "mkdocstrings", "nbdev"):
        pytest.importorskip(mod, reason=f"docs dependency {mod} not installed: pip install -e '.[docs]'")
    from vlnotes.tools.docs import build_docs, katex_dir
    if os.environ.get("VLNOTES_TEST_DOCS_SITE"):  # reuse a site built by `vlnotes docs` (when iterating on these tests)
        return Path(os.environ["VLNOTES_TEST_DOCS_SITE"])
    try: katex_dir(ROOT)
    except FileNotFoundError as e: pytest.skip(str(e))
    out = tmp_path_factory.mktemp("site")
    t0 = time.perf_counter()
    build_docs(out=out, root=ROOT)
    print(f"\nsite built in {time.perf_counter() - t0:.1f}s -> {out}")
    return out


def _notebooks():
    from vlnotes.tools.docs import site_notebooks
    return site_notebooks(NBS)


# --- fast checks, no site build --------------------------------------------------------------------------------

def _touch_nb(path, title="T"):
    import nbformat
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {title}\n> d")]), path)


def test_pages_come_from_every_folder_but_skipped_names(tmp_path):
    from vlnotes.tools.docs import site_notebooks
    for rel in ("index.ipynb", "guides/adding_a_paper.ipynb", "foundations/00_core.ipynb", "tools/00_cli.ipynb",
                "papers/10_backbones/10_resnet.ipynb", "papers/_template.ipynb", "papers/_drafts/10_x.ipynb",
                "papers/10_backbones/.ipynb_checkpoints/10_resnet-checkpoint.ipynb"):
        _touch_nb(tmp_path / rel)
    found = [p.relative_to(tmp_path).as_posix() for p in site_notebooks(tmp_path)]
    assert found == ["foundations/00_core.ipynb", "guides/adding_a_paper.ipynb", "index.ipynb",
                     "papers/10_backbones/10_resnet.ipynb", "tools/00_cli.ipynb"]


def test_repository_pages_are_unique_and_flat():
    from vlnotes.tools.docs import page_names
    nbs = _notebooks()
    pages = page_names(nbs)  # raises when two notebooks in different folders would be the same page
    assert pages["00_core.ipynb"] == "core.html" and pages["index.ipynb"] == "index.html"
    assert pages["adding_a_paper.ipynb"] == "adding_a_paper.html"
    assert {p.relative_to(NBS).parts[0] for p in nbs} >= {"index.ipynb", "guides", "foundations", "papers", "tools"}
    assert not any(p.name.startswith("_") for p in nbs), "the template gets no page"


def test_nbdev_links_with_folders_point_at_pages():
    from vlnotes.tools.docs import fix_markdown
    pages = {"00_core.ipynb": "core.html", "20_clip.ipynb": "clip.html"}
    text = ("[`Settings`](https://vlnotes.github.io/vlnotes/foundations/core.html#settings), "
            "[CLIP](../papers/20_contrastive/20_clip.ipynb#parity), "
            "[home](https://vlnotes.github.io/vlnotes/index.html)")
    assert fix_markdown(text, pages, "https://vlnotes.github.io/vlnotes") == \
        "[`Settings`](core.html#settings), [CLIP](clip.html#parity), [home](index.html)"


def test_navigation_follows_the_folders_and_groups():
    from vlnotes.tools.cli import GROUPS, paper_notebooks
    from vlnotes.tools.docs import _nav, page_name
    entries = [(p, page_name(p)[:-5] + ".ipynb", p.stem) for p in _notebooks()]
    nav = _nav(entries, {"vlnotes.core": NBS / "foundations/00_core.ipynb"}, NBS)
    assert [next(iter(d)) for d in nav] == ["Home", "Guides", "Foundations", "Papers", "Pretrained zoo", "Tools",
                                            "API reference"]
    sections = {next(iter(d)): next(iter(d.values())) for d in nav}
    assert sections["Home"] == "index.ipynb" and sections["Guides"] == [{"adding_a_paper": "adding_a_paper.ipynb"}]
    groups = sorted({p.group for p in paper_notebooks(NBS).values()})
    assert [next(iter(g)) for g in sections["Papers"]] == [GROUPS[g] for g in groups]
    in_papers = [page for g in sections["Papers"] for item in next(iter(g.values())) for page in item.values()]
    assert in_papers == [page_name(p.path)[:-5] + ".ipynb" for p in paper_notebooks(NBS).values()]
    assert {"cli.ipynb", "docs.ipynb", "package.ipynb"} == {v for item in sections["Tools"] for v in item.values()}
    assert {"shapes.ipynb"} == {v for item in sections["Pretrained zoo"] for v in item.values()}


# --- the built site --------------------------------------------------------------------------------------------


def test_every_notebook_has_a_page(site):
    from vlnotes.tools.docs import exported_modules, page_name
    nbs = _notebooks()
    missing = [p.name for p in nbs if not (site / page_name(p)).is_file()]
    assert not missing, f"notebooks without a page: {missing}"
    api_missing = [m for m in exported_modules(nbs) if not (site / "api" / f"{m}.html").is_file()]
    assert not api_missing, f"modules without an API page: {api_missing}"
    index = (site / "index.html").read_text()
    assert "Papers and their claims" in index and "<table" in index, "home page with the claims table"
    nav = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", index))
    for label in ("Guides", "Adding a paper", "Foundations", "Papers", "Backbones", "Tools"):
        assert f" {label} " in nav, f"navigation entry {label!r} missing from the home page"
    docs = json.loads((site / "search/search_index.json").read_text())["docs"]
    indexed = {d["location"].split("#")[0] for d in docs}
    assert {page_name(p) for p in nbs} <= indexed, "every page is in the offline search index"


def test_processing_follows_nbdev(site):
    "`#| hide` cells gone, `show_doc` rendered without its code, `#| export` code shown, no cell options left."
    core = (site / "core.html").read_text()
    code = html.unescape(re.sub(r"<[^>]+>", "", "\n".join(re.findall(r"<pre\b[^>]*>(.*?)</pre>", core, re.S))))
    assert "from nbdev.showdoc import show_doc" not in code, "#| hide cell hidden"
    assert "default_exp" not in code and "#| export" not in code and "#| echo" not in code, "no cell options left"
    assert "show_doc(" not in core, "show_doc input removed"
    assert "Settings as the environment says now." in core, "show_doc output rendered"
    assert 'class="nc">Settings' in core and 'class="nf">get_settings' in core, "#| export code shown, highlighted"


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(); self.links, self.ids = [], set()
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in ("id", "name"):
            if a.get(k) and (k == "id" or tag == "a"): self.ids.add(a[k])
        for k in ("href", "src"):
            if a.get(k) is not None and not (tag == "link" and a.get("rel") in ("canonical",)):
                self.links.append((tag, a[k]))


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> _Links:
    p = _Links(); p.feed(path.read_text(errors="replace")); return p


def test_internal_links_resolve(site):
    broken = []
    pages = [f for f in sorted(site.rglob("*.html")) if f.name != "404.html"]  # 404.html uses root-absolute URLs
    for page in pages:
        for tag, link in _parse(page).links:
            u = urllib.parse.urlsplit(link)
            if u.scheme or u.netloc or link.startswith(("mailto:", "javascript:", "data:")): continue
            target = page if not u.path else (page.parent / urllib.parse.unquote(u.path)).resolve()
            if target.is_dir(): target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: <{tag}> {link} (no file)"); continue
            frag = urllib.parse.unquote(u.fragment)
            if frag and target.suffix == ".html" and frag not in _parse(target).ids:
                broken.append(f"{page.relative_to(site)}: <{tag}> {link} (no id {frag!r})")
    assert not broken, f"{len(broken)} broken internal links:\n" + "\n".join(broken[:40])


# --- headless Chromium over the DevTools protocol -------------------------------------------------------------

class Chromium:
    "Minimal Chrome DevTools protocol client: one page, events recorded."
    def __init__(self, binary: str, profile: Path):
        import websocket
        profile.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                      "--remote-debugging-port=0",
                                      "--window-size=1280,900", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file, deadline = profile / "DevToolsActivePort", time.time() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.time() > deadline or self.proc.poll() is not None:
                self.close(); raise RuntimeError("chromium did not start (no DevToolsActivePort)")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        for _ in range(100):
            targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
            pages = [t for t in targets if t["type"] == "page"]
            if pages: break
            time.sleep(0.1)
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], suppress_origin=True, timeout=60)
        self.next_id, self.events = 0, []
        for domain in ("Page", "Runtime", "Network", "Log"): self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)

    def send(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg: raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg: self.events.append(msg)

    def wait_event(self, name, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(e["method"] == name for e in self.events): return
            self.ws.settimeout(max(0.1, deadline - time.time()))
            msg = json.loads(self.ws.recv())
            if "method" in msg: self.events.append(msg)
        raise TimeoutError(name)

    def eval(self, expr):
        r = self.send("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r: raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def load(self, url, timeout=30):
        self.events.clear()
        self.send("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired", timeout)
        deadline = time.time() + timeout  # KaTeX runs from Material's document$ after load and then marks the body
        while not self.eval('document.readyState == "complete" && document.body.dataset.math == "typeset"'):
            if time.time() > deadline: raise TimeoutError(f"{url}: math not typeset after {timeout}s")
            time.sleep(0.05)

    def errors(self):
        out = []
        for e in self.events:
            m, p = e["method"], e["params"]
            if m == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                args = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
                out.append("console." + p["type"] + ": " + args)
            elif m == "Runtime.exceptionThrown":
                details = p["exceptionDetails"]
                out.append("exception: " + details.get("exception", {}).get("description", details["text"]))
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"log: {p['entry']['text']} {p['entry'].get('url', '')}")
            elif m == "Network.loadingFailed" and not p.get("canceled"):
                out.append(f"network: {p.get('errorText')} ({p['requestId']})")
        return out

    def requests(self):
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def screenshot(self, path: Path, *selectors: str):
        "Save a PNG of the viewport, scrolled to the first element matching the first selector that matches."
        if selectors:
            find = " || ".join(f"document.querySelector({json.dumps(s)})" for s in selectors)
            self.eval(f"({find} || document.body).scrollIntoView({{block: 'center'}})")
        time.sleep(0.2)
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))
        return path

    def close(self):
        try: self.ws.close()
        except Exception: pass
        self.proc.terminate()
        try: self.proc.wait(10)
        except subprocess.TimeoutExpired: self.proc.kill()


def _leaves_localhost(url: str) -> bool:
    u = urllib.parse.urlsplit(url)
    if u.scheme in ("data", "blob", "about"): return False
    return not (u.scheme in ("http", "https", "ws", "wss") and u.hostname == "127.0.0.1")


@pytest.fixture(scope="module")
def served(site):
    quiet = type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    handler = functools.partial(quiet, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown(); server.server_close()


@pytest.fixture(scope="module")
def browser(served, tmp_path_factory):
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None: pytest.skip("chromium not installed (Debian: apt-get install -y chromium)")
    pytest.importorskip("websocket", reason="websocket-client not installed: pip install -e '.[docs]'")
    b = Chromium(binary, tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


SHOWCASE = ("papers/20_contrastive/20_clip.ipynb", "papers/10_backbones/10_resnet.ipynb", "foundations/08_train.ipynb")


def _showcase_notebook() -> Path:
    "The page the browser test inspects: the first of `SHOWCASE` that exists ($VLNOTES_DOCS_SHOWCASE overrides)."
    for rel in (os.environ.get("VLNOTES_DOCS_SHOWCASE", ""), *SHOWCASE):
        if rel and (NBS / rel).exists(): return NBS / rel
    pytest.skip(f"none of {SHOWCASE} exists")


MATH_STATE = """(() => {
  const a = document.querySelector("article");
  const c = a.cloneNode(true);
  c.querySelectorAll("pre, code, script, style, .katex, .clipboard-copy-txt, .highlight-ipynb")
   .forEach(e => e.remove());
  return {katex: a.querySelectorAll(".katex").length, display: a.querySelectorAll(".katex-display").length,
          errors: Array.from(a.querySelectorAll(".katex-error")).map(e => e.title || e.textContent).slice(0, 5),
          raw_display: c.textContent.includes("$$")};
})()"""

IMAGES = """Array.from(document.querySelectorAll("article img"))
  .map(i => ({ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth}))"""


def _share(shots, prefix):
    "Copy screenshots to $VLNOTES_DOCS_SCREENS (default /tmp/docs_screens), outside pytest's rotating tmp dirs."
    shared = Path(os.environ.get("VLNOTES_DOCS_SCREENS", "/tmp/docs_screens"))
    try:
        shared.mkdir(parents=True, exist_ok=True)
        for s in shots: shutil.copy2(s, shared / f"{prefix}-{s.name}")
    except OSError: pass


def test_showcase_page_in_chromium(site, served, browser, tmp_path):
    from vlnotes.tools.docs import page_name
    nb = _showcase_notebook()
    url = f"{served}/{page_name(nb)}"
    browser.load(url)
    math = browser.eval(MATH_STATE)
    images = browser.eval(IMAGES)
    shots = [browser.screenshot(tmp_path / "page-top.png"),
             browser.screenshot(tmp_path / "page-math.png", ".katex-display", ".katex"),
             browser.screenshot(tmp_path / "page-figure.png", "article .jp-OutputArea-output img")]
    _share(shots, nb.stem)
    print(f"\n{url}: {math['katex']} KaTeX elements ({math['display']} display), "
          f"{sum(i['ok'] for i in images)}/{len(images)} images loaded; screenshots:\n" + "\n".join(map(str, shots)))
    assert math["katex"] > 0, f"no KaTeX-typeset math on {nb.name}'s page"
    assert not math["errors"], f"KaTeX could not parse: {math['errors']}"
    assert not math["raw_display"], "raw $$ left in the page text"
    assert any(i["ok"] for i in images), f"no figure loaded on {nb.name}'s page ({images})"
    assert not browser.errors(), f"console/network errors: {browser.errors()}"
    external = [u for u in browser.requests() if _leaves_localhost(u)]
    assert not external, f"requests leaving 127.0.0.1: {external}"


def test_every_page_loads_offline_and_clean(site, served, browser):
    """Every notebook page, the 404 page and an API page (they share one template): images load, no console errors,
    no KaTeX errors, no request to another host (fonts, CDNs, GitHub API)."""
    problems = []
    api = sorted(site.glob("api/*.html"))
    for page in sorted(site.glob("*.html")) + api[:1]:
        rel = page.relative_to(site).as_posix()
        browser.load(f"{served}/{rel}")
        problems += [f"{rel}: {e}" for e in browser.errors()]
        problems += [f"{rel}: request to {u}" for u in browser.requests() if _leaves_localhost(u)]
        if rel != "404.html":
            errs = browser.eval(MATH_STATE)["errors"]
            problems += [f"{rel}: KaTeX error {e}" for e in errs]
            broken = [i for i in browser.eval(IMAGES) if not i["ok"]]
            problems += [f"{rel}: {len(broken)} images did not load"] * bool(broken)
    assert not problems, "\n".join(problems[:40])


def test_offline_search(site, served, browser, tmp_path):
    "Material's built-in search answers from the local index."
    browser.load(f"{served}/index.html")
    shots = [browser.screenshot(tmp_path / "home.png")]
    browser.eval("""(() => { const t = document.getElementById("__search");
                    if (t) { t.checked = true; t.dispatchEvent(new Event("change")); }
                    const i = document.querySelector(".md-search__input"); i.focus(); i.value = "shapes world";
                    i.dispatchEvent(new Event("input", {bubbles: true}));
                    i.dispatchEvent(new KeyboardEvent("keyup", {bubbles: true})); })()""")
    deadline, n = time.time() + 20, 0
    while time.time() < deadline and n == 0:
        time.sleep(0.2); n = browser.eval('document.querySelectorAll(".md-search-result__item").length')
    shots.append(browser.screenshot(tmp_path / "search.png"))
    _share(shots, "index")
    assert n > 0, "search returned no results"
    assert not [u for u in browser.requests() if _leaves_localhost(u)]
