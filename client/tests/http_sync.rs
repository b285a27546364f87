//! The client against a fake HTTP server on loopback: the sync loop over
//! `sync_core::sync::respond`, a round cut mid-way, a refused request,
//! cancelling, and how transport failures are typed.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use sync_core::store::MemoryStorage;
use sync_core::sync::{AllowAll, DocRequest, DocSetPolicy, Message};
use sync_core::Replica;
use tpsync_client::{Client, ClientConfig, ClientError, SyncProgress};

fn fast() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(2),
        ..ClientConfig::default()
    }
}

/// A fake server whose `POST /v1/sync` answers with `responder`; the
/// sync request numbered `cut_at` (from 1) is applied, then the connection
/// is dropped without an answer.
fn sync_server(responder: Arc<Mutex<SyncResponder>>, cut_at: Option<usize>) -> FakeServer {
    let n = AtomicUsize::new(0);
    FakeServer::start(move |req| {
        if req.method != "POST" || req.path != "/v1/sync" {
            return Reply::problem(404, "not_found", "no such route");
        }
        if !req.authorized() {
            return Reply::problem(
                401,
                "token_expired",
                "your sign-in has expired; sign in again",
            );
        }
        assert_eq!(req.header("content-type"), Some("application/x-tpsync"));
        let round = n.fetch_add(1, Ordering::SeqCst) + 1;
        match responder.lock().unwrap().answer(&req.body) {
            Answer::Frame(_) if Some(round) == cut_at => Reply::Cut,
            Answer::Frame(frame) => Reply::Answer {
                status: 200,
                content_type: "application/x-tpsync",
                headers: vec![],
                body: frame,
            },
            Answer::Refused(status, body) => Reply::Answer {
                status,
                content_type: "application/problem+json",
                headers: vec![],
                body: body.to_string().into_bytes(),
            },
        }
    })
}

#[test]
fn a_sync_exchanges_changes_both_ways_and_reports_progress() {
    let responder = Arc::new(Mutex::new(SyncResponder::new(AllowAll)));
    add_books(&mut responder.lock().unwrap().replica, "server-dev", 2);
    let server = sync_server(responder.clone(), None);
    let client = Client::new(&server.base, fast()).unwrap();
    let mut phone = Replica::open(MemoryStorage::new());
    add_books(&mut phone, "phone-1", 3);

    let mut rounds: Vec<SyncProgress> = Vec::new();
    let mut record = |p: &SyncProgress| rounds.push(p.clone());
    let stats = client
        .sync(
            TOKEN,
            &mut phone,
            &server_peer(),
            &[books(), equipment()],
            Some(&mut record),
            None,
        )
        .unwrap();
    assert_eq!(count_books(&mut phone), 5);
    assert_eq!(count_books(&mut responder.lock().unwrap().replica), 5);
    assert_eq!(rounds.len() as u32, stats.round_trips);
    assert_eq!(rounds.last().unwrap().bytes_received, stats.bytes_received);
    assert!(rounds.windows(2).all(|w| w[0].round + 1 == w[1].round));
    // (A peer with nothing but genesis gets a whole-document save: one.)
    assert!(
        stats.changes_sent > 0 && stats.changes_received > 0,
        "{stats:?}"
    );

    // Nothing new: one round, nothing moves.
    let again = client
        .sync(
            TOKEN,
            &mut phone,
            &server_peer(),
            &[books(), equipment()],
            None,
            None,
        )
        .unwrap();
    assert_eq!(
        (
            again.round_trips,
            again.changes_sent,
            again.changes_received
        ),
        (1, 0, 0)
    );
}

#[test]
fn a_round_cut_mid_way_is_abandoned_and_the_next_sync_resumes() {
    let responder = Arc::new(Mutex::new(SyncResponder::new(AllowAll)));
    add_books(&mut responder.lock().unwrap().replica, "server-dev", 2);
    // The first request is applied by the server, but its answer is lost.
    let server = sync_server(responder.clone(), Some(1));
    let client = Client::new(&server.base, fast()).unwrap();
    let mut phone = Replica::open(MemoryStorage::new());
    add_books(&mut phone, "phone-1", 3);

    let e = client
        .sync(TOKEN, &mut phone, &server_peer(), &[books()], None, None)
        .unwrap_err();
    assert!(matches!(e, ClientError::ConnectionLost(_)), "{e:?}");
    assert!(e.is_retryable());
    assert_eq!(count_books(&mut responder.lock().unwrap().replica), 5);
    assert_eq!(count_books(&mut phone), 3);

    let stats = client
        .sync(TOKEN, &mut phone, &server_peer(), &[books()], None, None)
        .unwrap();
    assert_eq!(count_books(&mut phone), 5);
    assert_eq!(count_books(&mut responder.lock().unwrap().replica), 5);
    // The resumed sync asked before sending: a probe, and nothing resent.
    let requests = &responder.lock().unwrap().requests;
    let Message::Request(docs) = &requests[1] else {
        panic!("{:?}", requests[1])
    };
    assert!(matches!(docs[0].1, DocRequest::Probe { .. }), "{docs:?}");
    assert_eq!(stats.changes_sent, 0);
    assert!(stats.changes_received > 0);
}

#[test]
fn a_refused_request_is_a_problem_naming_the_document() {
    // The phone may read the books but not write them.
    let policy = DocSetPolicy {
        readable: [books()].into(),
        writable: Default::default(),
    };
    let responder = Arc::new(Mutex::new(SyncResponder::new(policy)));
    let server = sync_server(responder.clone(), None);
    let client = Client::new(&server.base, fast()).unwrap();
    let mut phone = Replica::open(MemoryStorage::new());
    add_books(&mut phone, "phone-1", 1);

    let e = client
        .sync(TOKEN, &mut phone, &server_peer(), &[books()], None, None)
        .unwrap_err();
    let ClientError::Problem {
        status, problems, ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(*status, 403);
    assert_eq!(e.code(), Some("forbidden"));
    assert_eq!(
        problems[0].doc.as_deref(),
        Some(books().to_string().as_str())
    );
    assert!(e.to_string().contains("nothing was applied"), "{e}");
    assert_eq!(count_books(&mut responder.lock().unwrap().replica), 0);

    // A stale token is a typed problem too.
    let e = client
        .sync("stale", &mut phone, &server_peer(), &[books()], None, None)
        .unwrap_err();
    assert_eq!(e.code(), Some("token_expired"));
    assert!(e.needs_login());
}

#[test]
fn cancelling_stops_between_rounds() {
    let responder = Arc::new(Mutex::new(SyncResponder::new(AllowAll)));
    let server = sync_server(responder.clone(), None);
    let client = Client::new(&server.base, fast()).unwrap();
    let mut phone = Replica::open(MemoryStorage::new());
    // More changes than a push without memory: a probe round comes first.
    add_books(
        &mut phone,
        "phone-1",
        sync_core::sync::PUSH_WITHOUT_MEMORY_LIMIT + 6,
    );

    let cancel = AtomicBool::new(true);
    let e = client
        .sync(
            TOKEN,
            &mut phone,
            &server_peer(),
            &[books()],
            None,
            Some(&cancel),
        )
        .unwrap_err();
    assert!(matches!(e, ClientError::Cancelled), "{e:?}");
    assert!(server.paths().is_empty(), "nothing sent");

    cancel.store(false, Ordering::SeqCst);
    let mut stop_after_first = |_: &SyncProgress| cancel.store(true, Ordering::SeqCst);
    let e = client
        .sync(
            TOKEN,
            &mut phone,
            &server_peer(),
            &[books()],
            Some(&mut stop_after_first),
            Some(&cancel),
        )
        .unwrap_err();
    assert!(matches!(e, ClientError::Cancelled), "{e:?}");
    assert_eq!(server.paths().len(), 1);
    assert_eq!(count_books(&mut responder.lock().unwrap().replica), 0);

    let stats = client
        .sync(TOKEN, &mut phone, &server_peer(), &[books()], None, None)
        .unwrap();
    assert!(stats.round_trips >= 1);
    assert_eq!(
        count_books(&mut responder.lock().unwrap().replica),
        sync_core::sync::PUSH_WITHOUT_MEMORY_LIMIT + 6
    );
}

#[test]
fn an_answer_that_is_not_a_frame_is_a_protocol_error() {
    // A network sign-in page answering in place of the server.
    let server = FakeServer::start(|_| Reply::Answer {
        status: 200,
        content_type: "text/html; charset=utf-8",
        headers: vec![],
        body: b"<html>please sign in to the wifi</html>".to_vec(),
    });
    let client = Client::new(&server.base, fast()).unwrap();
    let mut phone = Replica::open(MemoryStorage::new());
    add_books(&mut phone, "phone-1", 1);
    let e = client
        .sync(TOKEN, &mut phone, &server_peer(), &[books()], None, None)
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::Protocol(m) if m.contains("sign-in page")),
        "{e:?}"
    );

    // Too large an answer is refused, not read into memory.
    let server = FakeServer::start(|_| Reply::Answer {
        status: 200,
        content_type: "application/x-tpsync",
        headers: vec![],
        body: vec![7; 10_000],
    });
    let config = ClientConfig {
        max_response_bytes: 1000,
        ..fast()
    };
    let client = Client::new(&server.base, config).unwrap();
    let e = client.sync_round(TOKEN, b"TPSY").unwrap_err();
    assert!(
        matches!(&e, ClientError::Protocol(m) if m.contains("larger")),
        "{e:?}"
    );
}

#[test]
fn a_closed_port_is_unreachable_at_once() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = Client::new(&format!("http://127.0.0.1:{port}"), fast()).unwrap();
    let start = Instant::now();
    let e = client.health().unwrap_err();
    assert!(
        matches!(&e, ClientError::Unreachable(m) if m.contains("refused")),
        "{e:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(e.is_retryable());
    assert!(e.to_string().starts_with("cannot reach the server"), "{e}");
}

#[test]
fn a_connect_that_hangs_gives_up_after_the_connect_timeout() {
    // A listener whose accept queue is full drops new connection attempts,
    // as a server behind a dead link would: connecting hangs.
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            fillers.push(s);
        }
    }
    let config = ClientConfig {
        connect_timeout: Duration::from_millis(300),
        ..fast()
    };
    let client = Client::new(&format!("http://{addr}"), config).unwrap();
    let start = Instant::now();
    let e = client.health().unwrap_err();
    let took = start.elapsed();
    assert!(
        matches!(&e, ClientError::Unreachable(m) if m.contains("did not answer within 0.3 s")),
        "{e:?}"
    );
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "{took:?}"
    );
    drop(socket);
}

#[test]
fn a_server_that_does_not_answer_times_out() {
    let server = FakeServer::start(|_| Reply::Silent(Duration::from_secs(3)));
    let config = ClientConfig {
        idle_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(600),
        ..fast()
    };
    let client = Client::new(&server.base, config).unwrap();
    let start = Instant::now();
    let e = client.sync_round(TOKEN, b"TPSY").unwrap_err();
    assert!(matches!(e, ClientError::Timeout), "{e:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn json_calls_and_their_errors() {
    let server = FakeServer::start(|req| match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/healthz") => Reply::json(
            200,
            serde_json::json!({"status": "ok", "version": "0.1.0", "docs_loaded": 3, "uptime_s": 9}),
        ),
        ("GET", "/metrics") => Reply::Answer {
            status: 200,
            content_type: "text/plain; version=0.0.4",
            headers: vec![],
            body: b"tpsync_syncs_total 4\n".to_vec(),
        },
        ("POST", "/v1/auth/login") => {
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            if body["password"] != "right" {
                return Reply::problem(401, "invalid_credentials", "wrong user name or password");
            }
            assert_eq!(body["device_id"], "phone-1");
            assert_eq!(body["device_name"], "李老师的手机");
            Reply::json(
                200,
                serde_json::json!({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 900,
                    "refresh_token": "r1", "device_id": "phone-1",
                    "user": {"id": "u1", "username": "li", "role": "teacher", "unit": SCHOOL}}),
            )
        }
        ("GET", "/v1/me") if req.authorized() => Reply::json(
            200,
            serde_json::json!({"user": {"id": "u1", "username": "li", "role": "teacher", "unit": SCHOOL},
                "device_id": "phone-1",
                "scope": {"read": [books().to_string()], "write": [books().to_string()]}}),
        ),
        ("GET", "/v1/me") => Reply::Answer {
            status: 429,
            content_type: "text/plain",
            headers: vec![("Retry-After", "4".into())],
            body: b"slow down".to_vec(),
        },
        ("POST", "/v1/auth/logout") => Reply::Answer {
            status: 204,
            content_type: "text/plain",
            headers: vec![],
            body: vec![],
        },
        _ => Reply::Answer {
            status: 502,
            content_type: "text/html",
            headers: vec![],
            body: b"<html>Bad Gateway</html>".to_vec(),
        },
    });
    let client = Client::new(&format!("{}/", server.base), fast()).unwrap();
    assert_eq!(client.health().unwrap()["status"], "ok");
    assert!(client.metrics().unwrap().contains("tpsync_syncs_total"));
    let device = "phone-1".parse().unwrap();
    let e = client
        .login("li", "wrong", &device, Some("李老师的手机"))
        .unwrap_err();
    assert_eq!(e.code(), Some("invalid_credentials"));
    assert_eq!(e.to_string(), "wrong user name or password");
    let tokens = client
        .login("li", "right", &device, Some("李老师的手机"))
        .unwrap();
    assert_eq!(tokens.user.unit.as_deref(), Some(SCHOOL));
    let me = client.me(&tokens.access_token).unwrap();
    assert_eq!(me.scope.all(), vec![books()]);
    client.logout(&tokens.access_token).unwrap();

    let e = client.me("other").unwrap_err();
    assert!(
        matches!(&e, ClientError::Problem { status: 429, retry_after: Some(d), .. } if *d == Duration::from_secs(4)),
        "{e:?}"
    );
    assert_eq!(e.code(), Some("rate_limited"));
    let e = client.refresh("r1").unwrap_err();
    assert_eq!(e.status(), Some(502));
    assert!(e.is_retryable());
}
