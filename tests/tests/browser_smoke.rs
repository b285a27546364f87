//! The browser harness end to end, against a tiny server in the test: a
//! form posts a Chinese name, the answer sets a cookie and redirects (303),
//! and the page it leads to shows the cookie's value and an inline SVG bar
//! whose `data-count` holds a number. The page is then laid out as a
//! 390×844 phone and must not scroll sideways. A wait that fails says
//! where it was and what the page showed, and leaves a screenshot and the
//! HTML; no Chromium process outlives its `Browser`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tpsync_tests::browser::{self, Browser};

#[test]
fn a_form_posts_sets_a_cookie_redirects_and_the_result_reads_on_a_phone() {
    let started = Instant::now();
    browser::chromium();
    let installed = started.elapsed();

    let server = Server::start();
    let launch_started = Instant::now();
    let browser = Browser::launch();
    let launched = launch_started.elapsed();
    let pid = browser.pid();

    let steps_started = Instant::now();
    let mut page = browser.open(&server.url("/"));
    assert_eq!(page.text("h1"), "登记");
    page.fill("input[name=teacher]", "张老师");
    page.click("button[type=submit]");

    // The POST, then the GET the 303 led to; the browser asks for Chinese.
    assert_eq!(page.url(), server.url("/result"));
    let requests = server.requests();
    assert!(requests[0].starts_with("GET / (zh-CN"), "{requests:?}");
    assert_eq!(
        requests[1..],
        [
            "POST /submit teacher=%E5%BC%A0%E8%80%81%E5%B8%88",
            "GET /result"
        ]
    );
    assert_eq!(page.text("#greeting"), "你好，张老师");
    assert_eq!(
        page.cookie("teacher").as_deref(),
        Some("%E5%BC%A0%E8%80%81%E5%B8%88")
    );
    assert_eq!(
        page.attr("svg rect.bar", "data-count").as_deref(),
        Some("3")
    );
    assert_eq!(page.attr("svg rect.bar", "data-missing"), None);
    assert_eq!(page.texts("li"), ["书 120", "设备 7"]);
    assert_eq!(page.eval("1 + 1"), 2);

    page.set_phone_viewport(390, 844);
    assert_eq!(page.eval("window.innerWidth"), 390);
    let scroll_width = page.eval("document.documentElement.scrollWidth");
    assert!(
        scroll_width.as_u64().is_some_and(|w| w <= 390),
        "the page scrolls sideways on a phone: scrollWidth {scroll_width}"
    );

    let shots = tempfile::tempdir().unwrap();
    let shot = shots.path().join("result.png");
    page.screenshot(&shot);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG: {}", shot.display());

    // A wait that fails names the URL, quotes the page and saves it.
    page.set_timeout(Duration::from_millis(300));
    let failure = panic::catch_unwind(AssertUnwindSafe(|| {
        page.wait_for("#never");
    }))
    .expect_err("waiting for #never must fail");
    let message = failure
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    assert!(message.contains("#never"), "{message}");
    assert!(message.contains(&server.url("/result")), "{message}");
    assert!(message.contains("你好，张老师"), "{message}");
    let saved = message
        .split("saved: ")
        .nth(1)
        .expect("the message names the saved files");
    let png_path = saved.split(" and ").next().unwrap();
    let html_path = saved.split(" and ").nth(1).unwrap().lines().next().unwrap();
    assert!(std::fs::read(png_path).unwrap().starts_with(b"\x89PNG"));
    assert!(std::fs::read_to_string(html_path)
        .unwrap()
        .contains("data-count=\"3\""));
    std::fs::remove_dir_all(std::path::Path::new(png_path).parent().unwrap()).unwrap();

    // The next page, after the only one is dropped, is still signed in
    // (the session cookie).
    drop(page);
    let again = browser.open(&server.url("/result"));
    assert_eq!(again.text("#greeting"), "你好，张老师");
    assert_eq!(again.eval("window.innerWidth"), 1280, "a phone no more");
    let steps = steps_started.elapsed();

    // Closing the browser ends every process it started.
    let family = descendants(pid);
    assert!(!family.is_empty(), "Chromium {pid} has no child processes?");
    let closing = Instant::now();
    drop(again);
    drop(browser);
    let closed = closing.elapsed();
    let deadline = Instant::now() + Duration::from_secs(10);
    let alive = |pids: &BTreeSet<u32>| -> Vec<u32> {
        pids.iter()
            .copied()
            .chain([pid])
            .filter(|&p| running(p))
            .collect()
    };
    while !alive(&family).is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        alive(&family),
        Vec::<u32>::new(),
        "Chromium processes outlived the browser"
    );

    eprintln!(
        "chromium() {installed:.1?}, launch {launched:.1?}, steps {steps:.1?}, \
         close {closed:.1?}, whole test {:.1?}",
        started.elapsed()
    );
}

/// Whether `pid` exists and is not a zombie (an orphan that exited but
/// that init has not reaped yet).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat[stat.rfind(')').unwrap() + 2..].starts_with('Z'))
}

/// The processes under `pid` (children, grandchildren…), from `/proc`.
fn descendants(pid: u32) -> BTreeSet<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid …"; comm may hold spaces and parentheses.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let ppid: u32 = after.split(' ').nth(1).unwrap().parse().unwrap();
        parents.push((p, ppid));
    }
    let mut found = BTreeSet::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(p, ppid) in &parents {
            if ppid == parent && found.insert(p) {
                frontier.push(p);
            }
        }
    }
    found
}

/// Three pages over plain HTTP/1.1, one thread per connection.
struct Server {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = Arc::clone(&log);
                thread::spawn(move || {
                    let _ = handle(stream, &log);
                });
            }
        });
        Server { base, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The requests for pages (not the favicon), in order.
    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

const HEAD: &str = "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
    <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
    <title>测试</title></head>";

fn handle(stream: TcpStream, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(()); // a preconnect that never asked for anything
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut content_length = 0;
    let mut cookie = String::new();
    let mut accept_language = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => content_length = value.trim().parse().unwrap_or(0),
            "cookie" => cookie = value.trim().to_string(),
            "accept-language" => accept_language = value.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body).into_owned();

    let response = match (method.as_str(), path.as_str()) {
        ("GET", "/") => {
            log.lock()
                .unwrap()
                .push(format!("GET / ({accept_language})"));
            page(
                "<h1>登记</h1>\
                 <form method=\"post\" action=\"/submit\">\
                 <label>姓名 <input name=\"teacher\"></label>\
                 <button type=\"submit\">提交</button></form>",
            )
        }
        ("POST", "/submit") => {
            log.lock().unwrap().push(format!("POST /submit {body}"));
            let teacher = body.strip_prefix("teacher=").unwrap_or_default();
            format!(
                "HTTP/1.1 303 See Other\r\nLocation: /result\r\n\
                 Set-Cookie: teacher={teacher}; Path=/; HttpOnly\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
        }
        ("GET", "/result") => {
            log.lock().unwrap().push("GET /result".into());
            let teacher = cookie
                .split("; ")
                .find_map(|c| c.strip_prefix("teacher="))
                .map(percent_decode)
                .unwrap_or_default();
            let count = teacher.chars().count();
            let width = count * 40;
            page(&format!(
                "<p id=\"greeting\">你好，{teacher}</p>\
                 <ul><li>书 120</li><li>设备 7</li></ul>\
                 <svg width=\"300\" height=\"60\" viewBox=\"0 0 300 60\" role=\"img\">\
                 <rect class=\"bar\" x=\"0\" y=\"10\" width=\"{width}\" height=\"40\" \
                 fill=\"#4a7\" data-count=\"{count}\"></rect></svg>"
            ))
        }
        _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
    };
    let mut stream = stream;
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

fn page(body: &str) -> String {
    let html = format!("{HEAD}<body>{body}</body></html>");
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{html}",
        html.len()
    )
}

/// `application/x-www-form-urlencoded` value to text.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
