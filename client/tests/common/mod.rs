//! A tiny HTTP/1.1 server on loopback for the client's tests (the real
//! server is another crate), and a sync responder over a second replica.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sync_core::store::MemoryStorage;
use sync_core::sync::{respond, AccessPolicy, Message, ResponderLimits};
use sync_core::workload::sample_book;
use sync_core::{DocId, DocKind, EditContext, PeerId, RecordId, Replica, SchoolId};

pub const SCHOOL: &str = "4301230001";
pub const TOKEN: &str = "good-token";

pub fn books() -> DocId {
    DocId::school(&SchoolId::new(SCHOOL).unwrap(), DocKind::Books).unwrap()
}

pub fn equipment() -> DocId {
    DocId::school(&SchoolId::new(SCHOOL).unwrap(), DocKind::Equipment).unwrap()
}

pub fn server_peer() -> PeerId {
    PeerId::new("server").unwrap()
}

/// Adds `n` books to `replica`'s books document.
pub fn add_books(replica: &mut Replica<MemoryStorage>, device: &str, n: usize) {
    for i in 0..n {
        let ctx = EditContext {
            user: "u1".parse().unwrap(),
            device: device.parse().unwrap(),
            now_ms: 1_700_000_000_000 + i as i64,
        };
        replica
            .edit(&books(), |d| {
                d.insert(&ctx, RecordId::random(), &sample_book(i))
            })
            .unwrap();
    }
}

pub fn count_books(replica: &mut Replica<MemoryStorage>) -> usize {
    replica
        .doc(&books())
        .unwrap()
        .list::<sync_core::records::Book>()
        .unwrap()
        .len()
}

/// One request as the fake server read it.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    /// With the query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn authorized(&self) -> bool {
        self.header("authorization") == Some(&format!("Bearer {TOKEN}"))
    }
}

/// What the fake server does with a request.
pub enum Reply {
    Answer {
        status: u16,
        content_type: &'static str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// Answers the status line, headers and the first `send` bytes of a
    /// body announced as longer, then closes.
    CutMidBody {
        content_type: &'static str,
        body: Vec<u8>,
        send: usize,
    },
    /// Closes the connection without answering.
    Cut,
    /// Answers nothing for this long, then closes.
    Silent(Duration),
}

impl Reply {
    pub fn json(status: u16, v: serde_json::Value) -> Self {
        Reply::Answer {
            status,
            content_type: "application/json",
            headers: vec![],
            body: v.to_string().into_bytes(),
        }
    }

    pub fn problem(status: u16, code: &str, detail: &str) -> Self {
        Reply::Answer {
            status,
            content_type: "application/problem+json",
            headers: vec![],
            body: serde_json::json!({
                "type": format!("https://tpsync.dev/problems/{code}"),
                "title": code, "status": status, "detail": detail, "code": code,
            })
            .to_string()
            .into_bytes(),
        }
    }
}

pub type Handler = Arc<dyn Fn(&Req) -> Reply + Send + Sync>;

/// A loopback HTTP server answering with `handler`, one request per
/// connection (`Connection: close`). Lives until the test process ends.
pub struct FakeServer {
    pub base: String,
    pub seen: Arc<Mutex<Vec<Req>>>,
}

impl FakeServer {
    pub fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let handler = handler.clone();
                let seen = seen2.clone();
                std::thread::spawn(move || serve(conn, &*handler, &seen));
            }
        });
        Self { base, seen }
    }

    pub fn paths(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

fn serve(conn: TcpStream, handler: &(dyn Fn(&Req) -> Reply + Send + Sync), seen: &Mutex<Vec<Req>>) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let Some(req) = read_request(&mut reader) else {
        return;
    };
    seen.lock().unwrap().push(req.clone());
    let mut conn = conn;
    match handler(&req) {
        Reply::Answer {
            status,
            content_type,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
        Reply::CutMidBody {
            content_type,
            body,
            send,
        } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body[..send]);
        }
        Reply::Cut => {}
        Reply::Silent(d) => std::thread::sleep(d),
    }
    let _ = conn.flush();
    let _ = conn.shutdown(std::net::Shutdown::Both);
}

fn read_request(r: &mut impl BufRead) -> Option<Req> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Req {
        method,
        path,
        headers,
        body,
    })
}

/// The server side of sync for the fake servers: `respond()` over its own
/// replica, with a policy, turning a refusal into a problem answer as the
/// real server will.
pub struct SyncResponder {
    pub replica: Replica<MemoryStorage>,
    pub policy: Box<dyn AccessPolicy + Send>,
    /// Requests received, decoded.
    pub requests: Vec<Message>,
}

pub enum Answer {
    Frame(Vec<u8>),
    /// status, problem JSON
    Refused(u16, serde_json::Value),
}

impl SyncResponder {
    pub fn new(policy: impl AccessPolicy + Send + 'static) -> Self {
        Self {
            replica: Replica::open(MemoryStorage::new()),
            policy: Box::new(policy),
            requests: Vec::new(),
        }
    }

    pub fn answer(&mut self, request: &[u8]) -> Answer {
        self.requests.push(Message::decode(request).unwrap());
        let peer = PeerId::new("phone-1").unwrap();
        let frame = respond(
            &mut self.replica,
            &peer,
            &*self.policy,
            &ResponderLimits::default(),
            request,
        )
        .unwrap();
        match Message::decode(&frame).unwrap() {
            Message::Refused(problems) => {
                let forbidden = problems.iter().any(|p| p.code == "forbidden");
                let status = if forbidden { 403 } else { 422 };
                let code = if forbidden { "forbidden" } else { "invalid" };
                let body = serde_json::json!({
                    "type": format!("https://tpsync.dev/problems/{code}"),
                    "title": "Sync refused",
                    "status": status,
                    "detail": "the server refused the sync; nothing was applied",
                    "code": code,
                    "problems": problems.iter().map(|p| serde_json::json!({
                        "doc": p.doc, "code": p.code, "message": p.message,
                    })).collect::<Vec<_>>(),
                });
                Answer::Refused(status, body)
            }
            _ => Answer::Frame(frame),
        }
    }
}
