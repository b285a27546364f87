//! The WebSocket session against a fake server (tungstenite's server side
//! over `respond()`): sync, queued "changed" notices, a refusal that keeps
//! the socket open, a rejected token, and a socket cut mid-round.

mod common;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use sync_core::store::MemoryStorage;
use sync_core::sync::{AllowAll, DocSetPolicy};
use sync_core::Replica;
use tpsync_client::{ClientConfig, ClientError, WsSession};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::Message;

/// Serves one WebSocket connection at a time. Before the first answer of
/// each connection it sends a "changed" notice; with `cut_at`, the
/// request numbered so (from 1, over all connections) is applied and the
/// socket dropped.
fn ws_server(responder: Arc<Mutex<SyncResponder>>, cut_at: Option<usize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut round = 0;
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            // tungstenite's callback type, large error and all.
            #[allow(clippy::result_large_err)]
            let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
                assert_eq!(req.uri().path(), "/v1/sync/ws");
                let auth = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok());
                if auth == Some(&format!("Bearer {TOKEN}")) {
                    Ok(resp)
                } else {
                    let mut e = ErrorResponse::new(Some(
                        r#"{"type":"https://tpsync.dev/problems/token_invalid","status":401,"code":"token_invalid","detail":"this sign-in is not valid; sign in again"}"#.into(),
                    ));
                    *e.status_mut() = tungstenite::http::StatusCode::UNAUTHORIZED;
                    e.headers_mut()
                        .insert("content-type", "application/problem+json".parse().unwrap());
                    Err(e)
                }
            };
            let Ok(mut ws) = tungstenite::accept_hdr(conn, check) else {
                continue;
            };
            let mut first = true;
            loop {
                let msg = match ws.read() {
                    Ok(m) => m,
                    Err(_) => break,
                };
                let Message::Binary(request) = msg else {
                    continue;
                };
                round += 1;
                let answer = responder.lock().unwrap().answer(&request);
                if Some(round) == cut_at {
                    break; // applied, answer lost
                }
                if first {
                    first = false;
                    let notice =
                        format!(r#"{{"type":"changed","docs":["{}","not an id"]}}"#, books());
                    ws.send(Message::text(notice)).unwrap();
                    ws.send(Message::text(r#"{"type":"hello-from-the-future"}"#))
                        .unwrap();
                }
                match answer {
                    Answer::Frame(f) => ws.send(Message::binary(f)).unwrap(),
                    Answer::Refused(_, mut body) => {
                        body["type"] = "problem".into();
                        ws.send(Message::text(body.to_string())).unwrap();
                    }
                }
            }
        }
    });
    base
}

fn config() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(2),
        ..ClientConfig::default()
    }
}

#[test]
fn sync_over_the_socket_queues_notices() {
    let responder = Arc::new(Mutex::new(SyncResponder::new(AllowAll)));
    add_books(&mut responder.lock().unwrap().replica, "server-dev", 2);
    let base = ws_server(responder.clone(), None);
    let mut ws = WsSession::connect_with_config(&base, TOKEN, config()).unwrap();
    let mut phone = Replica::open(MemoryStorage::new());
    add_books(&mut phone, "phone-1", 3);

    let stats = ws
        .sync(
            &mut phone,
            &server_peer(),
            &[books(), equipment()],
            None,
            None,
        )
        .unwrap();
    assert!(stats.round_trips >= 1);
    assert_eq!(count_books(&mut phone), 5);
    assert_eq!(count_books(&mut responder.lock().unwrap().replica), 5);

    // The notice that came during the sync is waiting; a bad id is skipped.
    let start = Instant::now();
    assert_eq!(
        ws.wait_changed(Duration::from_secs(5)).unwrap(),
        Some(vec![books()])
    );
    assert!(start.elapsed() < Duration::from_millis(100));
    // Nothing more: a short wait ends empty, and the socket stays usable.
    assert_eq!(ws.wait_changed(Duration::from_millis(150)).unwrap(), None);
    let again = ws
        .sync(&mut phone, &server_peer(), &[books()], None, None)
        .unwrap();
    assert_eq!((again.changes_sent, again.changes_received), (0, 0));
    ws.close();
}

#[test]
fn a_refusal_keeps_the_socket_and_a_bad_token_is_a_problem() {
    let policy = DocSetPolicy {
        readable: [books(), equipment()].into(),
        writable: [equipment()].into(),
    };
    let responder = Arc::new(Mutex::new(SyncResponder::new(policy)));
    let base = ws_server(responder.clone(), None);

    let e = WsSession::connect_with_config(&base, "forged", config()).unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(401), Some("token_invalid")));
    assert!(e.needs_login());

    let mut ws = WsSession::connect_with_config(&base, TOKEN, config()).unwrap();
    let mut phone = Replica::open(MemoryStorage::new());
    add_books(&mut phone, "phone-1", 1);
    let e = ws
        .sync(&mut phone, &server_peer(), &[books()], None, None)
        .unwrap_err();
    assert_eq!(e.code(), Some("forbidden"));
    let ClientError::Problem { problems, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(
        problems[0].doc.as_deref(),
        Some(books().to_string().as_str())
    );
    // Still open: a sync the phone may do goes through.
    ws.sync(&mut phone, &server_peer(), &[equipment()], None, None)
        .unwrap();
}

#[test]
fn a_cut_socket_fails_typed_and_a_new_one_resumes() {
    let responder = Arc::new(Mutex::new(SyncResponder::new(AllowAll)));
    add_books(&mut responder.lock().unwrap().replica, "server-dev", 2);
    let base = ws_server(responder.clone(), Some(1));
    let mut phone = Replica::open(MemoryStorage::new());
    add_books(&mut phone, "phone-1", 3);

    let mut ws = WsSession::connect_with_config(&base, TOKEN, config()).unwrap();
    let e = ws
        .sync(&mut phone, &server_peer(), &[books()], None, None)
        .unwrap_err();
    assert!(matches!(e, ClientError::ConnectionLost(_)), "{e:?}");
    // The socket is done for; the caller connects again.
    let e = ws.wait_changed(Duration::from_millis(10)).unwrap_err();
    assert!(
        matches!(&e, ClientError::ConnectionLost(m) if m.contains("connect again")),
        "{e:?}"
    );

    let mut ws = WsSession::connect_with_config(&base, TOKEN, config()).unwrap();
    let stats = ws
        .sync(&mut phone, &server_peer(), &[books()], None, None)
        .unwrap();
    assert_eq!(stats.changes_sent, 0, "the server had them already");
    assert_eq!(count_books(&mut phone), 5);
    assert_eq!(count_books(&mut responder.lock().unwrap().replica), 5);
}

#[test]
fn a_closed_port_is_unreachable() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = WsSession::connect_with_config(&format!("http://127.0.0.1:{port}"), TOKEN, config())
        .unwrap_err();
    assert!(matches!(e, ClientError::Unreachable(_)), "{e:?}");
}
