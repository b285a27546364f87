//! Headless Chromium for end-to-end tests of the server-rendered pages
//! (dashboards in Chinese: HTML forms, cookies, inline SVG charts).
//!
//! ```no_run
//! use tpsync_tests::browser::Browser;
//!
//! let browser = Browser::launch();
//! let page = browser.open("http://127.0.0.1:8080/login");
//! page.fill("input[name=user]", "张老师").fill("input[name=password]", "pw");
//! page.click("button[type=submit]"); // waits for the page the form leads to
//! assert_eq!(page.text("h1"), "学校概况");
//! page.set_phone_viewport(390, 844);
//! let width = page.eval("document.documentElement.scrollWidth");
//! assert!(width.as_u64().unwrap() <= 390);
//! ```
//!
//! Everything blocks and panics on failure, like the rest of the test
//! support: a test reads as the steps a person takes. A step that fails
//! (a selector that never appears, a click that loads no page, a script
//! that throws) panics with the current URL and the page's text, and saves
//! a screenshot and the HTML under `$TMPDIR/tpsync-browser/` (the panic
//! message names the files). A test that panics for its own reasons (an
//! `assert!`) gets the same files from the [`Page`]'s `Drop`.
//!
//! - [`chromium`] finds Debian's Chromium, installing it (once per machine,
//!   under a lock file) when it is missing.
//! - [`Browser::launch`] starts one headless Chromium with its own fresh
//!   profile directory; dropping the last handle closes it and kills it.
//! - [`Browser::open`] gives a [`Page`] (one tab) at a URL.
//!
//! Selector steps ([`Page::click`], [`Page::fill`], [`Page::text`],
//! [`Page::attr`]) first wait up to the page's timeout
//! ([`DEFAULT_TIMEOUT`], see [`Page::set_timeout`]) for the selector to
//! match, so a test need not wait by hand for what a page renders late.
//!
//! # Why `headless_chrome`
//!
//! It speaks the DevTools protocol to Chromium directly and is blocking,
//! which fits `#[test]` functions with no async runtime, and it needs no
//! second program: the WebDriver crates (`fantoccini`, `thirtyfour`) need
//! `chromedriver` running beside the browser, an async runtime wrapped
//! around every call, and bring hyper (and, by default, a TLS stack). With
//! its default features `headless_chrome` uses the protocol bindings it
//! ships ("offline"), has no TLS and no browser download ("fetch" is off),
//! and shares `tungstenite` with the client crate. Its own waiting
//! (`wait_until_navigated`) follows loading events, which can miss a
//! POST-redirect-GET; this module waits for a new document itself (a marker
//! set on the old `window` is gone and `document.readyState` is
//! `complete`), and reads the page with `Runtime.evaluate` by value, so
//! nothing holds DOM node ids across a navigation.
//!
//! Its costs: every protocol call takes 100–200 ms (its reader thread
//! holds the socket in 100 ms turns; upstream issue #446), so each step
//! here is fused into one to three calls and takes a fraction of a second;
//! and the connection is dropped after [`IDLE_TIMEOUT`] without traffic
//! (its default, 30 s, would break a test that pauses for its server).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use headless_chrome::browser::tab::point::Point;
use headless_chrome::protocol::cdp::{Emulation, Input, Page as Cdp, Runtime};
use headless_chrome::{LaunchOptions, Tab};
use serde_json::Value;

/// How long a step waits for a selector, a page load or a condition.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a waiting step looks again.
const POLL: Duration = Duration::from_millis(50);
/// How long the connection to Chromium may stay silent before it is given
/// up, and so also the longest one protocol call may take. A test may leave
/// its browser untouched this long between steps.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the failure files (screenshot, HTML) may take to save.
const DUMP_TIMEOUT: Duration = Duration::from_secs(15);
/// How much of a page's text a failure message quotes.
const TEXT_IN_MESSAGES: usize = 2000;
/// Debian's packages: the browser, and a small CJK font so that Chinese
/// pages lay out and screenshot as a person sees them (without one, every
/// Han character is an empty box).
const PACKAGES: [&str; 2] = ["chromium", "fonts-wqy-microhei"];
/// Chromium's flags beyond those `headless_chrome` always passes
/// (`--headless`, `--disable-gpu`, `--no-first-run`,
/// `--disable-background-networking`, `--disable-sync`, a fresh
/// `--user-data-dir`, and `--no-sandbox` as asked for below). This machine
/// reaches no Google host: without these Chromium keeps trying to.
const EXTRA_FLAGS: [&str; 3] = [
    "--disable-quic",
    "--disable-component-update",
    // The pages' readers are Chinese; Accept-Language says so (headless
    // Chromium ignores `--lang` for it).
    "--accept-lang=zh-CN,zh",
];

/// The marker a navigation step sets on the old document's `window`.
const MARKER: &str = "__tpsyncOldDocument";

static CHROMIUM: OnceLock<PathBuf> = OnceLock::new();

/// Chromium's binary: `TPSYNC_CHROMIUM` if set, else `chromium` (or
/// `chromium-browser`) on `PATH` or in `/usr/bin`.
///
/// If there is none, installs Debian's `chromium` (and a CJK font) with
/// `apt-get`, as root or through `sudo -n`, and panics saying what to
/// install when neither is possible. `apt-get update` runs only when the
/// package lists are missing or the install failed with the lists there.
/// Once per process; a lock file in the temporary directory keeps two test
/// processes from installing at once (the second finds it installed).
pub fn chromium() -> &'static Path {
    CHROMIUM.get_or_init(|| {
        if let Some(path) = std::env::var_os("TPSYNC_CHROMIUM") {
            let path = PathBuf::from(path);
            assert!(
                path.exists(),
                "TPSYNC_CHROMIUM={} does not exist",
                path.display()
            );
            return path;
        }
        if let Some(path) = find_chromium() {
            return path;
        }
        let lock_path = std::env::temp_dir().join("tpsync-chromium-install.lock");
        let lock = File::create(&lock_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", lock_path.display()));
        lock.lock()
            .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
        // Another process may have installed it while this one waited.
        if let Some(path) = find_chromium() {
            return path;
        }
        let started = Instant::now();
        install_chromium();
        let path = find_chromium().unwrap_or_else(|| {
            panic!("apt-get installed {PACKAGES:?} but there is still no chromium binary")
        });
        eprintln!(
            "browser: installed {} in {:.0?}",
            path.display(),
            started.elapsed()
        );
        path
    })
}

fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]);
    for dir in dirs {
        for name in ["chromium", "chromium-browser"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// `apt-get install` of [`PACKAGES`], with an `apt-get update` first only
/// if the package lists are missing, and once more if the install fails.
fn install_chromium() {
    let sudo = if unsafe { libc::geteuid() } == 0 {
        false
    } else if Command::new("sudo")
        .args(["-n", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        true
    } else {
        panic!(
            "the browser tests need Chromium, which is not installed, and this \
             process can neither run apt-get as root nor through `sudo -n`. \
             Install it once: `sudo apt-get install -y --no-install-recommends {}` \
             (or set TPSYNC_CHROMIUM=/path/to/chromium)",
            PACKAGES.join(" ")
        );
    };
    let apt = |args: &[&str]| -> Output {
        let mut command = if sudo {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        } else {
            Command::new("apt-get")
        };
        command
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .unwrap_or_else(|e| panic!("cannot run apt-get: {e}"))
    };
    let update = || {
        let out = apt(&["update"]);
        if !out.status.success() {
            panic!("`apt-get update` failed:\n{}", tail(&out));
        }
    };
    let mut install_args = vec![
        "install",
        "-y",
        "--no-install-recommends",
        // Wait for another apt (not a test) that holds dpkg's lock.
        "-o",
        "DPkg::Lock::Timeout=300",
    ];
    install_args.extend(PACKAGES);

    if !package_lists_present() {
        update();
    }
    let out = apt(&install_args);
    if out.status.success() {
        return;
    }
    // Stale lists name versions the mirror no longer has.
    update();
    let out = apt(&install_args);
    if !out.status.success() {
        panic!(
            "`apt-get {}` failed; the browser tests need Debian's {}:\n{}",
            install_args.join(" "),
            PACKAGES.join(" and "),
            tail(&out)
        );
    }
}

fn package_lists_present() -> bool {
    fs::read_dir("/var/lib/apt/lists").is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
    })
}

/// The last lines of a command's output, for a failure message.
fn tail(out: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// One headless Chromium. Clones share it; it is closed and killed when
/// the last handle (a clone or a [`Page`]) is dropped, and its profile
/// directory is removed. Its pages share one profile: cookies (a signed-in
/// session) carry from one [`Page`] to the next.
#[derive(Clone)]
pub struct Browser {
    inner: Arc<Launched>,
}

struct Launched {
    chrome: headless_chrome::Browser,
    /// Blank tabs for [`Browser::open`] to use before it makes a new one:
    /// the one Chromium starts with, and those of dropped pages. A dropped
    /// page's tab is kept rather than closed because closing the last tab
    /// ends the browser session, session cookies and all; a new tab also
    /// costs several protocol calls more.
    spare_tabs: Mutex<Vec<Arc<Tab>>>,
}

impl Browser {
    /// Starts Chromium ([`chromium`], installing it if need be) headless,
    /// without sandbox (tests run as root), with a fresh profile in a
    /// temporary directory, a 1280×800 window, and no traffic of its own.
    pub fn launch() -> Browser {
        let options = LaunchOptions::default_builder()
            .path(Some(chromium().to_path_buf()))
            .headless(true)
            .sandbox(false)
            .window_size(Some((1280, 800)))
            .idle_browser_timeout(IDLE_TIMEOUT)
            .args(EXTRA_FLAGS.iter().map(std::ffi::OsStr::new).collect())
            .build()
            .expect("launch options");
        let chrome = headless_chrome::Browser::new(options)
            .unwrap_or_else(|e| panic!("cannot start {}: {e:#}", chromium().display()));
        // Chromium's own first tab shows up shortly after the start.
        let deadline = Instant::now() + Duration::from_secs(2);
        let first_tab = loop {
            let tab = chrome.get_tabs().lock().unwrap().first().cloned();
            if tab.is_some() || Instant::now() >= deadline {
                break tab;
            }
            thread::sleep(Duration::from_millis(10));
        };
        Browser {
            inner: Arc::new(Launched {
                chrome,
                spare_tabs: Mutex::new(first_tab.into_iter().collect()),
            }),
        }
    }

    /// A tab at `url`, once the page has loaded.
    pub fn open(&self, url: &str) -> Page {
        let spare = self.inner.spare_tabs.lock().unwrap().pop();
        let tab = spare.unwrap_or_else(|| {
            self.inner
                .chrome
                .new_tab()
                .unwrap_or_else(|e| panic!("cannot open a tab: {e:#}"))
        });
        let page = Page {
            tab,
            browser: self.clone(),
            timeout: DEFAULT_TIMEOUT,
            dumped: AtomicBool::new(false),
        };
        page.goto(url);
        page
    }

    /// Chromium's process id.
    pub fn pid(&self) -> u32 {
        self.inner
            .chrome
            .get_process_id()
            .expect("a launched browser has a process")
    }
}

/// One tab. Every method blocks until its step is done and panics (with
/// the URL, the page's text and the paths of a screenshot and the HTML)
/// when it cannot be.
///
/// Each step is one to three protocol calls plus its polls; with
/// `headless_chrome` every call costs 100–200 ms (its reader thread holds
/// the socket in 100 ms turns), so a step takes a fraction of a second.
pub struct Page {
    tab: Arc<Tab>,
    /// Keeps Chromium alive as long as the page.
    browser: Browser,
    timeout: Duration,
    /// The failure files are saved once.
    dumped: AtomicBool,
}

impl Page {
    /// How long the waiting steps wait from now on.
    pub fn set_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }

    /// Loads `url` (not `about:blank`) and waits until the new document
    /// has loaded.
    pub fn goto(&self, url: &str) -> &Self {
        self.eval(&format!("window.{MARKER} = true"));
        if let Err(e) = self.tab.navigate_to(url) {
            self.fail(&format!("cannot load {url}: {e:#}"));
        }
        self.wait_for_new_document(&format!("loading {url}"));
        self
    }

    /// Clicks the element (scrolled into view; a real mouse click at its
    /// middle, once it has a size and nothing covers it) and waits until
    /// the page it leads to has loaded, after any redirects. For a click
    /// that stays on the page, [`Page::click_in_page`].
    pub fn click(&self, selector: &str) -> &Self {
        self.mouse_click(selector, true);
        self.wait_for_new_document(&format!("clicking {selector}"));
        self
    }

    /// Clicks the element and returns at once; no new page is expected.
    pub fn click_in_page(&self, selector: &str) -> &Self {
        self.mouse_click(selector, false);
        self
    }

    /// Types `value` into a text input or textarea (focus, select all,
    /// insert the text as an input method would, so Chinese works and the
    /// page's input events fire), or sets the value of any other control
    /// (`select`, dates…) with `input` and `change` events. Waits while the
    /// control is disabled or read-only; panics if it does not end up
    /// holding `value` (`maxlength`, a number field given letters).
    pub fn fill(&self, selector: &str, value: &str) -> &Self {
        let how = self.poll_element(
            selector,
            "filling in",
            &format!(
                "if (e.disabled || e.readOnly) return {{ wait: 'it is disabled or read-only' }};
                const typed = e instanceof HTMLTextAreaElement
                    || (e instanceof HTMLInputElement && ['text', 'search', 'email',
                        'password', 'tel', 'url', 'number'].includes(e.type));
                if (!typed || {value} === '') {{
                    e.value = {value};
                    e.dispatchEvent(new Event('input', {{ bubbles: true }}));
                    e.dispatchEvent(new Event('change', {{ bubbles: true }}));
                    return {{ value: 'set' }};
                }}
                e.focus();
                e.select();
                return {{ value: 'typed' }};",
                value = js(value)
            ),
        );
        if how == "typed" {
            let typed = self.tab.call_method(Input::InsertText {
                text: value.to_string(),
            });
            if let Err(e) = typed {
                self.fail(&format!("cannot type into {selector}: {e:#}"));
            }
        }
        let now = self.eval(&format!("document.querySelector({}).value", js(selector)));
        if now.as_str() != Some(value) {
            self.fail(&format!(
                "{selector} holds {now} after filling in {value:?}"
            ));
        }
        self
    }

    /// Waits until `selector` matches an element.
    pub fn wait_for(&self, selector: &str) -> &Self {
        self.poll_element(selector, "waiting for", "return { value: true };");
        self
    }

    /// Waits until the JavaScript expression `condition` is true (errors,
    /// as during a navigation, count as not yet).
    pub fn wait_until(&self, condition: &str) -> &Self {
        let deadline = Instant::now() + self.timeout;
        loop {
            let last = match self.try_eval(condition) {
                Ok(Value::Bool(true)) => return self,
                Ok(other) => format!("it is {other}"),
                Err(e) => format!("it throws {e}"),
            };
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "waited {:?} for `{condition}`; {last}",
                    self.timeout
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// Whether `selector` matches an element now (no waiting).
    pub fn exists(&self, selector: &str) -> bool {
        self.eval(&format!(
            "document.querySelector({}) !== null",
            js(selector)
        )) == true
    }

    /// The text of the first element matching `selector` (waiting for it):
    /// `innerText` as rendered (`textContent` for SVG), trimmed.
    pub fn text(&self, selector: &str) -> String {
        let text = self.poll_element(
            selector,
            "reading the text of",
            "return { value: (e.innerText ?? e.textContent).trim() };",
        );
        text.as_str().unwrap_or_default().to_string()
    }

    /// The text of every element matching `selector` now, in document
    /// order (no waiting: none is an empty list).
    pub fn texts(&self, selector: &str) -> Vec<String> {
        let texts = self.eval(&format!(
            "Array.from(document.querySelectorAll({}), e => (e.innerText ?? e.textContent).trim())",
            js(selector)
        ));
        serde_json::from_value(texts).expect("texts are strings")
    }

    /// An attribute of the first element matching `selector` (waiting for
    /// the element), `None` if it has no such attribute.
    pub fn attr(&self, selector: &str, name: &str) -> Option<String> {
        let value = self.poll_element(
            selector,
            "reading an attribute of",
            &format!("return {{ value: e.getAttribute({}) }};", js(name)),
        );
        value.as_str().map(str::to_string)
    }

    /// The document's URL (after redirects).
    pub fn url(&self) -> String {
        let url = self.eval("location.href");
        url.as_str().unwrap_or_default().to_string()
    }

    /// The whole document as HTML.
    pub fn html(&self) -> String {
        let html = self.eval("document.documentElement.outerHTML");
        html.as_str().unwrap_or_default().to_string()
    }

    /// A cookie the browser holds for this page's URL (HttpOnly ones too,
    /// which `document.cookie` does not show).
    pub fn cookie(&self, name: &str) -> Option<String> {
        let cookies = self
            .tab
            .get_cookies()
            .unwrap_or_else(|e| self.fail(&format!("cannot read cookies: {e:#}")));
        cookies
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| c.value)
    }

    /// Evaluates a JavaScript expression (awaiting a promise) and returns
    /// its value as JSON (`undefined` is `null`). Panics if it throws.
    pub fn eval(&self, expression: &str) -> Value {
        self.try_eval(expression)
            .unwrap_or_else(|e| self.fail(&format!("`{expression}` failed: {e}")))
    }

    /// Lays the page out as a phone of `width`×`height` CSS pixels would:
    /// a mobile viewport (the page's `<meta name="viewport">` counts; a
    /// page without one is laid out 980 pixels wide, as on a phone), device
    /// pixel ratio 2, touch events.
    pub fn set_phone_viewport(&self, width: u32, height: u32) -> &Self {
        self.emulate(width, height, true)
    }

    /// A desktop viewport of `width`×`height` CSS pixels.
    pub fn set_viewport(&self, width: u32, height: u32) -> &Self {
        self.emulate(width, height, false)
    }

    /// Saves a PNG of the whole page (not only the viewport) to `path`.
    pub fn screenshot(&self, path: &Path) -> &Self {
        if let Err(e) = screenshot(&self.tab, path) {
            self.fail(&format!("cannot take a screenshot: {e}"));
        }
        self
    }

    /// The tab itself, for what this module does not wrap.
    pub fn tab(&self) -> &Arc<Tab> {
        &self.tab
    }

    fn emulate(&self, width: u32, height: u32, mobile: bool) -> &Self {
        let metrics = Emulation::SetDeviceMetricsOverride {
            width,
            height,
            device_scale_factor: if mobile { 2.0 } else { 1.0 },
            mobile,
            scale: None,
            screen_width: None,
            screen_height: None,
            position_x: None,
            position_y: None,
            dont_set_visible_size: None,
            screen_orientation: None,
            viewport: None,
            display_feature: None,
            device_posture: None,
        };
        let touch = Emulation::SetTouchEmulationEnabled {
            enabled: mobile,
            max_touch_points: None,
        };
        let result = self
            .tab
            .call_method(metrics)
            .and_then(|_| self.tab.call_method(touch));
        if let Err(e) = result {
            self.fail(&format!("cannot set a {width}×{height} viewport: {e:#}"));
        }
        self
    }

    /// Scrolls the element into view, waits until it has a size and is
    /// what is under its middle, marks the document if a navigation is to
    /// follow (in the same call), then clicks there.
    fn mouse_click(&self, selector: &str, navigates: bool) {
        let mark = if navigates {
            format!("window.{MARKER} = true;")
        } else {
            String::new()
        };
        let middle = self.poll_element(
            selector,
            "clicking",
            &format!(
                "e.scrollIntoView({{ block: 'center', inline: 'center', behavior: 'instant' }});
                const r = e.getBoundingClientRect();
                if (r.width === 0 || r.height === 0) return {{ wait: 'it has no size (hidden?)' }};
                const x = r.left + r.width / 2, y = r.top + r.height / 2;
                const hit = document.elementFromPoint(x, y);
                if (hit === null || !(hit === e || e.contains(hit))) {{
                    const what = hit === null ? 'nothing' : hit.outerHTML.slice(0, 200);
                    return {{ wait: 'its middle shows ' + what }};
                }}
                {mark}
                return {{ value: [x, y] }};"
            ),
        );
        let point = Point {
            x: middle[0].as_f64().unwrap_or_default(),
            y: middle[1].as_f64().unwrap_or_default(),
        };
        if let Err(e) = self.tab.click_point(point) {
            self.fail(&format!("cannot click {selector}: {e:#}"));
        }
    }

    /// Polls `body` (statements with `e` bound to the first element that
    /// matches `selector`, returning `{ value }` when done or `{ wait:
    /// reason }` to look again) until it is done; `doing` names the step in
    /// the failure message. One protocol call per poll.
    fn poll_element(&self, selector: &str, doing: &str, body: &str) -> Value {
        let expression = format!(
            "(() => {{
                const e = document.querySelector({});
                if (e === null) return {{ wait: 'nothing matches it' }};
                {body}
            }})()",
            js(selector)
        );
        let deadline = Instant::now() + self.timeout;
        loop {
            let last = match self.try_eval(&expression) {
                Ok(Value::Object(mut answer)) => match answer.remove("wait") {
                    Some(reason) => reason.as_str().unwrap_or_default().to_string(),
                    None => return answer.remove("value").unwrap_or(Value::Null),
                },
                Ok(other) => format!("unexpected answer {other}"),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "{doing} {selector}: waited {:?}; {last}",
                    self.timeout
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// Waits until the document marked before the step is gone and its
    /// successor has loaded; fails on the browser's error page.
    /// A spare tab may still be on its way to `about:blank` when its next
    /// page marks it, so that blank page never counts as the new one.
    fn wait_for_new_document(&self, doing: &str) {
        let condition = format!(
            "window.{MARKER} === undefined && document.readyState === 'complete' \
             && location.href !== 'about:blank' ? location.href : null"
        );
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Ok(Value::String(url)) = self.try_eval(&condition) {
                if url.starts_with("chrome-error:") {
                    self.fail(&format!("{doing}: the browser shows its error page"));
                }
                return;
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "{doing}: no new page loaded within {:?}",
                    self.timeout
                ));
            }
            thread::sleep(POLL);
        }
    }

    fn try_eval(&self, expression: &str) -> Result<Value, String> {
        eval(&self.tab, expression)
    }

    /// Panics with `what`, the URL, the page's text and the paths of the
    /// failure files.
    fn fail(&self, what: &str) -> ! {
        let url = self.try_eval("location.href").map_or_else(
            |_| self.tab.get_url(),
            |v| v.as_str().unwrap_or_default().to_string(),
        );
        let text = self
            .try_eval("document.body ? document.body.innerText : ''")
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|e| format!("(cannot read it: {e})"));
        let text: String = text.chars().take(TEXT_IN_MESSAGES).collect();
        let saved = self.dump();
        panic!("{what}\n  url: {url}\n  {saved}\n  page text:\n{text}");
    }

    /// Saves a screenshot and the HTML (once per page), on another thread
    /// so that a hung page cannot hang the test for long; says where.
    fn dump(&self) -> String {
        if self.dumped.swap(true, Ordering::SeqCst) {
            return "(screenshot and HTML saved before)".to_string();
        }
        let dir = failure_dir();
        let (tx, rx) = mpsc::channel();
        let tab = Arc::clone(&self.tab);
        let thread_dir = dir.clone();
        thread::spawn(move || {
            let saved = save_failure_files(&tab, &thread_dir);
            let _ = tx.send(saved);
        });
        match rx.recv_timeout(DUMP_TIMEOUT) {
            Ok(Ok(())) => format!(
                "saved: {} and {}",
                dir.join("page.png").display(),
                dir.join("page.html").display()
            ),
            Ok(Err(e)) => format!("(could not save the page into {}: {e})", dir.display()),
            Err(_) => format!("(saving the page into {} took too long)", dir.display()),
        }
    }
}

impl Drop for Page {
    /// A test that panics (an assertion) leaves the page's screenshot and
    /// HTML behind, and says where.
    fn drop(&mut self) {
        if thread::panicking() && !self.dumped.load(Ordering::SeqCst) {
            let url = self.tab.get_url();
            eprintln!("browser: the test panicked on {url}; {}", self.dump());
        }
        // Back to blank, as a phone no more, and kept for the next page.
        let blank = self.tab.navigate_to("about:blank").is_ok()
            && self
                .tab
                .call_method(Emulation::ClearDeviceMetricsOverride(None))
                .is_ok()
            && self
                .tab
                .call_method(Emulation::SetTouchEmulationEnabled {
                    enabled: false,
                    max_touch_points: None,
                })
                .is_ok();
        if blank {
            let tab = Arc::clone(&self.tab);
            self.browser.inner.spare_tabs.lock().unwrap().push(tab);
        } else {
            let _ = self.tab.close(false);
        }
    }
}

/// A JavaScript string literal (JSON's is one).
fn js(s: &str) -> String {
    Value::from(s).to_string()
}

fn eval(tab: &Tab, expression: &str) -> Result<Value, String> {
    let evaluated = tab
        .call_method(Runtime::Evaluate {
            expression: expression.to_string(),
            return_by_value: Some(true),
            await_promise: Some(true),
            user_gesture: Some(true),
            object_group: None,
            include_command_line_api: None,
            silent: None,
            context_id: None,
            generate_preview: None,
            throw_on_side_effect: None,
            timeout: None,
            disable_breaks: None,
            repl_mode: None,
            allow_unsafe_eval_blocked_by_csp: None,
            unique_context_id: None,
            serialization_options: None,
        })
        .map_err(|e| format!("{e:#}"))?;
    if let Some(exception) = evaluated.exception_details {
        let detail = exception
            .exception
            .and_then(|e| e.description)
            .unwrap_or(exception.text);
        return Err(detail);
    }
    Ok(evaluated.result.value.unwrap_or(Value::Null))
}

fn screenshot(tab: &Tab, path: &Path) -> Result<(), String> {
    let size = eval(
        tab,
        "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]",
    )?;
    let dimension = |i: usize| size[i].as_f64().unwrap_or(0.0).clamp(1.0, 16_000.0);
    let png = tab
        .call_method(Cdp::CaptureScreenshot {
            format: Some(Cdp::CaptureScreenshotFormatOption::Png),
            quality: None,
            clip: Some(Cdp::Viewport {
                x: 0.0,
                y: 0.0,
                width: dimension(0),
                height: dimension(1),
                scale: 1.0,
            }),
            from_surface: Some(true),
            capture_beyond_viewport: Some(true),
            optimize_for_speed: None,
        })
        .map_err(|e| format!("{e:#}"))?;
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(png.data)
        .map_err(|e| e.to_string())?;
    fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn save_failure_files(tab: &Tab, dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let html = eval(tab, "document.documentElement.outerHTML")?;
    let html_path = dir.join("page.html");
    fs::write(&html_path, html.as_str().unwrap_or_default())
        .map_err(|e| format!("{}: {e}", html_path.display()))?;
    screenshot(tab, &dir.join("page.png"))
}

/// `$TMPDIR/tpsync-browser/<test name>-<pid>-<n>`: the test's thread is
/// named after the test.
fn failure_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let name: String = thread::current()
        .name()
        .unwrap_or("test")
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    std::env::temp_dir().join("tpsync-browser").join(format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ))
}
