//! `rmicro web` in a real headless browser: Debian's chromium, driven through chromedriver's
//! WebDriver API (plain HTTP and JSON). The page loads and lists a running service; a call
//! from its form shows the reply; a node that stops disappears without a reload; a node
//! whose metadata holds markup shows it as text, and no script of it runs. The test keeps a
//! screenshot: `docs/dashboard.png` when `RMICRO_SCREENSHOT=1`, else in the target directory.

use std::io::{Read as _, Write as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rmicro::Service;
use rmicro_conformance::process::Proc;
use serde_json::{Value, json};

mod support;

use support::{RMICRO, UP, start, unique};

/// Markup in a node's metadata, which must show as text.
const MARKUP: &str = r#"<img src=x onerror="document.title='pwned'">"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// One WebDriver command: `method path` with a JSON body; the answer's `value`, or `Err` with
/// WebDriver's error name.
fn webdriver(port: u16, method: &str, path: &str, body: &Value) -> Result<Value, String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("chromedriver");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let body = body.to_string();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write");
    stream.write_all(body.as_bytes()).expect("write");
    // chromedriver keeps the connection open whatever `Connection` says: read the head,
    // then `Content-Length` bytes.
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let (head_len, length) = loop {
        let n = stream.read(&mut buf).expect("read");
        assert!(
            n > 0,
            "chromedriver closed: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .expect("Content-Length");
            break (end + 4, length);
        }
    };
    while answer.len() < head_len + length {
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "chromedriver closed mid-answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer[..head_len + length]).into_owned();
    let body = &answer[head_len..];
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
    match v["value"]["error"].as_str() {
        Some(error) => Err(format!("{error}: {}", v["value"]["message"])),
        None => Ok(v["value"].clone()),
    }
}

struct Browser {
    port: u16,
    session: String,
    _driver: Proc,
}

impl Browser {
    fn start() -> Browser {
        let port = free_port();
        let mut driver = Proc::spawn("chromedriver", &[&format!("--port={port}")], &[]);
        driver.wait_for("started successfully", UP);
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,860"]
        }}}});
        let session = webdriver(port, "POST", "/session", &caps).expect("a chromium session");
        Browser {
            port,
            session: session["sessionId"]
                .as_str()
                .expect("session id")
                .to_owned(),
            _driver: driver,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: &Value) -> Result<Value, String> {
        webdriver(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body,
        )
    }

    fn open(&self, url: &str) {
        self.cmd("POST", "/url", &json!({"url": url}))
            .expect("navigate");
    }

    /// The element `css` selects, once there is one.
    fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + UP;
        loop {
            match self.cmd(
                "POST",
                "/element",
                &json!({"using": "css selector", "value": css}),
            ) {
                Ok(v) => {
                    return v
                        .as_object()
                        .and_then(|o| o.values().next())
                        .and_then(Value::as_str)
                        .expect("element id")
                        .to_owned();
                }
                Err(e) if Instant::now() < deadline => {
                    assert!(e.starts_with("no such element"), "{e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("no `{css}` within {UP:?}: {e}\n{}", self.text("body")),
            }
        }
    }

    fn count(&self, css: &str) -> usize {
        self.cmd(
            "POST",
            "/elements",
            &json!({"using": "css selector", "value": css}),
        )
        .ok()
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0)
    }

    fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.cmd("GET", &format!("/element/{id}/text"), &json!({}))
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.cmd("POST", &format!("/element/{id}/click"), &json!({}))
            .expect("click");
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.cmd("POST", &format!("/element/{id}/clear"), &json!({}))
            .expect("clear");
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            &json!({"text": text}),
        )
        .expect("type");
    }

    fn script(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            &json!({"script": script, "args": []}),
        )
        .expect("script")
    }

    /// Waits until `ok` holds, for at most `UP`.
    fn until(&self, what: &str, ok: impl Fn(&Browser) -> bool) {
        let deadline = Instant::now() + UP;
        while !ok(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {UP:?}; the page shows:\n{}",
                self.text("body")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self) -> Vec<u8> {
        let png = self
            .cmd("GET", "/screenshot", &json!({}))
            .expect("screenshot");
        base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64"))
            .expect("PNG")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.cmd("DELETE", "", &json!({}));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_lists_calls_and_follows_the_registry_in_a_browser() {
    let name = unique("cli-web");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let first = start(
        Service::builder(&name).metadata("note", MARKUP),
        Arc::clone(&seen),
    )
    .await;
    let second = start(Service::builder(&name), Arc::clone(&seen)).await;
    let gone = second.address().to_string();
    let port = free_port();
    let mut web = Proc::spawn(
        RMICRO,
        &["web", "--address", &format!("127.0.0.1:{port}")],
        &[],
    );
    tokio::task::block_in_place(|| {
        web.wait_for("dashboard on http://", UP);
        let browser = Browser::start();
        browser.open(&format!("http://127.0.0.1:{port}/"));
        assert_eq!(browser.script("return document.title"), "rmicro");

        // The page lists the running service; picking it shows both nodes.
        let item = format!("li[data-service=\"{name}\"]");
        browser.find(&item);
        browser.click(&item);
        browser.until("both nodes listed", |b| b.count("#nodes tbody tr") == 2);
        browser.until("the endpoint offered", |b| {
            b.text("#endpoint").contains("StudentService.GetStudent")
        });

        // A call from the form shows the reply.
        browser.type_into("#request", r#"{"name":"davie"}"#);
        browser.click("#call");
        browser.until("the call's reply", |b| {
            let out = b.text("#call-result");
            out.contains("\"davie\"") && out.contains("软件工程专业")
        });
        assert_eq!(
            seen.lock().expect("lock").len(),
            1,
            "one call reached the service"
        );

        // The node's markup is shown as text; its script never ran.
        browser.until("the metadata shown", |b| b.text("#nodes").contains(MARKUP));
        assert_eq!(browser.count("#nodes img"), 0);
        assert_eq!(browser.script("return document.title"), "rmicro");

        // Health and metrics of the nodes arrive: the call is counted (both nodes live in this
        // process, whose one metrics registry both serve, so both show it).
        browser.until("health shown", |b| b.text("#nodes").contains("ready"));
        browser.until("the call counted in a node's metrics", |b| {
            let requests = b.script(
                "return [...document.querySelectorAll('#nodes tbody tr')].map(r => r.cells[3].textContent)",
            );
            let requests: Vec<&str> = requests
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            requests == ["1", "1"]
        });

        let png = browser.screenshot();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let keep = if std::env::var("RMICRO_SCREENSHOT").is_ok_and(|v| v == "1") {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/dashboard.png").to_owned()
        } else {
            std::env::temp_dir()
                .join("rmicro-dashboard.png")
                .display()
                .to_string()
        };
        std::fs::write(&keep, &png).expect("write the screenshot");
        println!("dashboard screenshot: {keep} ({} bytes)", png.len());

        // A node that stops disappears without a reload.
        tokio::runtime::Handle::current()
            .block_on(second.stop())
            .expect("stop");
        browser.until("the stopped node gone", |b| {
            b.count("#nodes tbody tr") == 1 && !b.text("#nodes").contains(&gone)
        });
        assert!(
            browser.text("#changes").contains("delete"),
            "the change is listed"
        );
    });
    first.stop().await.expect("stop");
    web.signal("INT");
    tokio::task::block_in_place(|| assert_eq!(web.wait_exit(UP), Some(0)));
}
