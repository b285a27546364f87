//! Photos and scans end to end against the real `tpsync serve`, through a
//! fault-injecting TCP proxy: a teacher's records sync first, then the
//! photo's bytes go up in verified chunk frames; cuts at random points,
//! damaged chunks (both ways), an upload over the school's quota, uploads of
//! blobs no record names, and a teacher reaching for another school's photo.

use serde_json::Value;
use sync_core::SchoolId;
use tpsync_blobs::BlobHash;
use tpsync_client::{Client, ClientConfig};
use tpsync_tests::county::{self, County};
use tpsync_tests::http::{get, post, put};
use tpsync_tests::phone::{photo, Phone};
use tpsync_tests::proxy::{FaultPlan, FaultyProxy};
use tpsync_tests::server::TestServer;

/// Records an equipment item and a photo of it on the phone, and syncs the
/// records (records first, bytes after). Returns the photo's name.
fn attach(
    phone: &mut Phone,
    client: &Client,
    school: &SchoolId,
    bytes: &[u8],
    n: usize,
) -> BlobHash {
    let item = phone.add_equipment(school, n);
    let hash = BlobHash::of(bytes);
    phone.attach_photo(school, item, &hash.to_hex(), bytes.len() as u64, n);
    phone.sync_all(client).expect("records sync first");
    hash
}

/// Uploads `bytes` as blob `hash` of `school` straight from a file, giving
/// up after `attempts` requests in a row without progress.
fn upload(
    client: &Client,
    token: &str,
    school: &SchoolId,
    hash: &BlobHash,
    bytes: &[u8],
    attempts: u32,
) -> Result<tpsync_client::UploadState, tpsync_client::ClientError> {
    let file = write_temp(bytes);
    client.upload_file(
        token,
        school.as_str(),
        hash,
        file.path(),
        attempts,
        &mut |_| {},
    )
}

fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    f
}

/// The whole blob as the server serves it (raw GET), straight, no proxy.
fn fetch_raw(url: &str, token: &str, school: &SchoolId, hash: &BlobHash) -> (u16, Vec<u8>) {
    let auth = format!("Bearer {token}");
    let r = get(
        url,
        &format!("/v1/schools/{school}/blobs/{hash}"),
        &[("authorization", &auth)],
    );
    (r.status, r.body)
}

fn metric(url: &str, name: &str) -> f64 {
    let text = get(url, "/metrics", &[]).text();
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A client through the proxy that notices a dead link within 10 s.
fn slow_client(url: &str) -> Client {
    let config = ClientConfig {
        idle_timeout: std::time::Duration::from_secs(10),
        ..ClientConfig::default()
    };
    Client::new(url, config).unwrap()
}

#[test]
fn uploads_and_downloads_cut_at_random_points_complete_and_verify() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path());
    let county = County::setup(&server);
    let school = county::school(0);
    let mut phone = Phone::new(county.teachers[0].clone());
    let token = &county.teachers[0].access_token;
    let county_token = &county.county.access_token;
    let out = tempfile::tempdir().unwrap();
    // Six links, each cutting every connection at its own random points:
    // from a 2G link in a valley (every 3–12 KB) to a passable one.
    let links = [
        (3_000, 12_000),
        (8_000, 40_000),
        (8_000, 40_000),
        (20_000, 90_000),
        (1_000, 150_000),
        (50_000, 60_000),
    ];
    for (seed, cut) in links.into_iter().enumerate() {
        let seed = seed as u64;
        let len = 150_000 + 37_000 * seed as usize;
        let bytes = photo(len, 100 + seed);
        let hash = attach(
            &mut phone,
            &county.client,
            &school,
            &bytes,
            100 + seed as usize,
        );
        let file = write_temp(&bytes);
        let proxy = FaultyProxy::start(
            server.url.trim_start_matches("http://").parse().unwrap(),
            FaultPlan {
                seed,
                cut_after_bytes: Some(cut),
                ..FaultPlan::default()
            },
        )
        .unwrap();
        let through = slow_client(&proxy.url());
        let mut seen = Vec::new();
        let done = through
            .upload_file(token, school.as_str(), &hash, file.path(), 200, &mut |n| {
                seen.push(n)
            })
            .unwrap_or_else(|e| panic!("link {cut:?}: the upload completes across the cuts: {e}"));
        assert!(done.complete && done.received == len as u64, "{done:?}");
        assert!(
            proxy.cuts() >= 2,
            "link {cut:?} was cut {} times",
            proxy.cuts()
        );
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "progress as the server stored it only grows: {seen:?}"
        );
        // Resumed, not restarted: little more than the photo went up.
        let up = proxy.bytes_up() as f64 / len as f64;
        assert!(
            up < 2.0,
            "link {cut:?}: {} bytes went up for {len} ({up:.2}×, {} cuts)",
            proxy.bytes_up(),
            proxy.cuts()
        );
        let (status, got) = fetch_raw(&server.url, token, &school, &hash);
        assert_eq!(status, 200);
        assert!(
            got == bytes,
            "link {cut:?}: the server's copy equals the photo"
        );

        // The county fetches it on demand, through the same bad link, resuming.
        let partial = out.path().join(format!("photo-{seed}.part"));
        let mut complete = false;
        for _ in 0..300 {
            match through.download_to(
                county_token,
                school.as_str(),
                &hash,
                &partial,
                &mut |_, _| {},
            ) {
                Ok((_, true)) => {
                    complete = true;
                    break;
                }
                Ok((_, false)) => {}
                Err(e) if e.is_retryable_transfer() => {}
                Err(e) => panic!("link {cut:?}: download: {e}"),
            }
        }
        assert!(
            complete,
            "link {cut:?}: the download completes across the cuts"
        );
        assert!(std::fs::read(&partial).unwrap() == bytes);
    }
}

#[test]
fn a_damaged_chunk_is_refused_and_sent_again_both_ways() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path());
    let county = County::setup(&server);
    let school = county::school(0);
    let mut phone = Phone::new(county.teachers[0].clone());
    let bytes = photo(200_000, 2);
    let hash = attach(&mut phone, &county.client, &school, &bytes, 2);
    let file = write_temp(&bytes);
    let token = &county.teachers[0].access_token;

    // Flip a byte well inside the upload body (past the headers of the
    // first requests) and one in the download.
    let proxy = FaultyProxy::start(
        server.url.trim_start_matches("http://").parse().unwrap(),
        FaultPlan {
            seed: 1,
            corrupt_up_at: vec![60_000],
            corrupt_down_at: vec![90_000],
            ..FaultPlan::default()
        },
    )
    .unwrap();
    let through = slow_client(&proxy.url());
    let refused_before = metric(&server.url, "tpsync_attachment_chunks_refused_total");
    let done = through
        .upload_file(token, school.as_str(), &hash, file.path(), 10, &mut |_| {})
        .expect("the upload completes after the damaged chunk is sent again");
    assert!(done.complete);
    assert_eq!(proxy.corruptions(), 1, "the proxy damaged one upload byte");
    assert_eq!(
        metric(&server.url, "tpsync_attachment_chunks_refused_total") - refused_before,
        1.0,
        "the server refused exactly the damaged chunk"
    );
    let (_, got) = fetch_raw(&server.url, token, &school, &hash);
    assert!(got == bytes, "nothing damaged was stored");

    // Downloading: the damaged frame is refused by the client and fetched again.
    let out = tempfile::tempdir().unwrap();
    let partial = out.path().join("photo.part");
    let first = through.download_to(token, school.as_str(), &hash, &partial, &mut |_, _| {});
    let err = first.expect_err("the damaged frame is refused");
    assert!(
        err.to_string().contains("does not match its SHA-256"),
        "{err}"
    );
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(
        kept > 0 && kept < 200_000,
        "the good frames before it are kept: {kept}"
    );
    let (n, complete) = through
        .download_to(token, school.as_str(), &hash, &partial, &mut |_, _| {})
        .expect("the next attempt resumes");
    assert!(complete && n == 200_000);
    assert!(std::fs::read(&partial).unwrap() == bytes);
    assert_eq!(proxy.corruptions(), 2);
}

#[test]
fn over_quota_is_refused_clearly_and_nothing_is_lost() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(
        data.path(),
        &["--attachment-quota-mb", "1", "--max-attachment-mb", "1"],
    );
    let county = County::setup(&server);
    let school = county::school(0);
    let token = county.teachers[0].access_token.clone();
    let mut phone = Phone::new(county.teachers[0].clone());
    let client = &county.client;

    let limits = client.attachment_limits(&token, school.as_str()).unwrap();
    assert_eq!(
        (
            limits.max_attachment_bytes,
            limits.quota_bytes,
            limits.used_bytes
        ),
        (1 << 20, 1 << 20, 0)
    );

    let first = photo(600_000, 3);
    let h1 = attach(&mut phone, client, &school, &first, 3);
    upload(&client, &token, &school, &h1, &first, 3).unwrap();
    assert_eq!(
        client
            .attachment_limits(&token, school.as_str())
            .unwrap()
            .used_bytes,
        600_000
    );

    // The second photo would take the school past 1 MiB.
    let second = photo(600_000, 4);
    let h2 = attach(&mut phone, client, &school, &second, 4);
    let err = upload(&client, &token, &school, &h2, &second, 3).expect_err("over quota");
    assert_eq!(err.code(), Some("quota_exceeded"), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("quota") && msg.contains("1048576"), "{msg}");
    if let tpsync_client::ClientError::Problem { status, body, .. } = &err {
        assert_eq!(*status, 413);
        assert_eq!(body["quota_bytes"], 1 << 20);
        assert_eq!(body["used_bytes"], 600_000);
    }
    // Too large on its own.
    let big = photo(1_100_000, 5);
    let h3 = attach(&mut phone, client, &school, &big, 5);
    let err = client
        .begin_upload(&token, school.as_str(), &h3, big.len() as u64)
        .unwrap_err();
    assert_eq!(err.code(), Some("attachment_too_large"), "{err}");

    // Nothing is lost: the first photo is served; every record is on the
    // server, the refused ones shown as not stored yet.
    let (status, got) = fetch_raw(&server.url, &token, &school, &h1);
    assert!(status == 200 && got == first);
    let auth = format!("Bearer {token}");
    let list: Value = serde_json::from_slice(
        &get(
            &server.url,
            &format!("/v1/schools/{school}/attachments"),
            &[("authorization", &auth)],
        )
        .body,
    )
    .unwrap();
    let stored: Vec<(String, bool)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["sha256"].as_str().unwrap().to_owned(),
                a["stored"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(stored.len(), 3, "{list:#}");
    for (h, want) in [(h1, true), (h2, false), (h3, false)] {
        assert!(stored.contains(&(h.to_hex(), want)), "{h}: {stored:?}");
    }
    assert_eq!(
        client
            .attachment_limits(&token, school.as_str())
            .unwrap()
            .used_bytes,
        600_000
    );
}

#[test]
fn blobs_follow_the_records_access() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path());
    let county = County::setup(&server);
    let (a, b) = (county::school(0), county::school(2));
    let client = &county.client;
    let ta = county.teachers[0].access_token.clone();
    let tb = county.teachers[2].access_token.clone();
    let mut phone_a = Phone::new(county.teachers[0].clone());
    let bytes = photo(50_000, 6);
    let h = attach(&mut phone_a, client, &a, &bytes, 6);
    upload(&client, &ta, &a, &h, &bytes, 3).unwrap();

    // Another school's teacher: refused at the door, both ways.
    let (status, body) = fetch_raw(&server.url, &tb, &a, &h);
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    let err = client
        .begin_upload(&tb, a.as_str(), &h, 50_000)
        .unwrap_err();
    assert_eq!(err.code(), Some("forbidden"));
    // Naming school A's photo in school B's own records does not make it
    // B's: B never sent the bytes, so B's readers get nothing.
    let mut phone_b = Phone::new(county.teachers[2].clone());
    let item = phone_b.add_equipment(&b, 1);
    phone_b.attach_photo(&b, item, &h.to_hex(), 50_000, 1);
    phone_b.sync_all(client).unwrap();
    let (status, _) = fetch_raw(&server.url, &tb, &b, &h);
    assert_eq!(
        status, 404,
        "B's record names A's photo, but B never sent it"
    );
    // The township of A and the county read it; the township of B does not.
    assert_eq!(
        fetch_raw(&server.url, &county.townships[0].access_token, &a, &h).0,
        200
    );
    assert_eq!(
        fetch_raw(&server.url, &county.county.access_token, &a, &h).0,
        200
    );
    assert_eq!(
        fetch_raw(&server.url, &county.townships[1].access_token, &a, &h).0,
        403
    );
    // The county reads but does not upload.
    let err = client
        .begin_upload(&county.county.access_token, a.as_str(), &h, 50_000)
        .unwrap_err();
    assert_eq!(err.code(), Some("forbidden"));

    // A range request resumes a plain download.
    let auth = format!("Bearer {ta}");
    let r = get(
        &server.url,
        &format!("/v1/schools/{a}/blobs/{h}"),
        &[("authorization", &auth), ("range", "bytes=49000-")],
    );
    assert_eq!(r.status, 206);
    assert!(r.body == bytes[49_000..]);

    // Bad input changes nothing and says what is wrong.
    let unnamed = BlobHash::of(b"no record names this");
    let err = client
        .begin_upload(&ta, a.as_str(), &unnamed, 20)
        .unwrap_err();
    assert_eq!(err.code(), Some("not_referenced"), "{err}");
    assert!(err.to_string().contains("sync the records first"), "{err}");
    let r = post(
        &server.url,
        &format!("/v1/schools/{a}/blobs/not-a-hash"),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        br#"{"size": 1}"#,
    );
    let p = r.problem(400, "bad_request");
    assert!(
        p["detail"].as_str().unwrap().contains("64 hex digits"),
        "{p}"
    );
    // A second photo: its upload refuses a wrong offset and a wrong body type.
    let second = photo(30_000, 7);
    let h2 = attach(&mut phone_a, client, &a, &second, 7);
    client.begin_upload(&ta, a.as_str(), &h2, 30_000).unwrap();
    let r = put(
        &server.url,
        &format!("/v1/schools/{a}/blobs/{h2}?offset=5"),
        &[
            ("authorization", &auth),
            ("content-type", tpsync_client::FRAMES_CONTENT_TYPE),
        ],
        b"",
    );
    let p = r.problem(409, "offset_mismatch");
    assert_eq!(p["received"], 0);
    let r = put(
        &server.url,
        &format!("/v1/schools/{a}/blobs/{h2}?offset=0"),
        &[("authorization", &auth), ("content-type", "image/jpeg")],
        &second,
    );
    r.problem(415, "unsupported_media_type");
    // Raw bytes sent as frames: refused as damaged, nothing stored.
    let r = put(
        &server.url,
        &format!("/v1/schools/{a}/blobs/{h2}?offset=0"),
        &[
            ("authorization", &auth),
            ("content-type", tpsync_client::FRAMES_CONTENT_TYPE),
        ],
        &second,
    );
    assert!(r.status == 422, "{} {}", r.status, r.text());
    assert_eq!(
        client
            .begin_upload(&ta, a.as_str(), &h2, 30_000)
            .unwrap()
            .received,
        0
    );
    // Bytes that are not the named photo: every frame is well formed, but
    // the whole does not hash to its name, so it is refused and dropped.
    let mut wrong = second.clone();
    wrong[100] ^= 1;
    let err = upload(&client, &ta, &a, &h2, &wrong, 1).unwrap_err();
    assert_eq!(err.code(), Some("attachment_mismatch"), "{err}");
    assert_eq!(fetch_raw(&server.url, &ta, &a, &h2).0, 404);
    assert_eq!(
        client
            .begin_upload(&ta, a.as_str(), &h2, 30_000)
            .unwrap()
            .received,
        0
    );
}

#[test]
fn an_upload_survives_a_server_crash_and_resumes_from_what_was_acknowledged() {
    let data = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(data.path());
    let county = County::setup(&server);
    let school = county::school(1);
    let mut phone = Phone::new(county.teachers[1].clone());
    let bytes = photo(250_000, 8);
    let hash = attach(&mut phone, &county.client, &school, &bytes, 8);
    let token = county.teachers[1].access_token.clone();

    // Send the first 100 KB as frames, then kill the server (SIGKILL).
    county
        .client
        .begin_upload(&token, school.as_str(), &hash, 250_000)
        .unwrap();
    let mut body = Vec::new();
    for c in bytes[..100_000].chunks(16 * 1024) {
        tpsync_blobs::encode_frame(c, &mut body);
    }
    let auth = format!("Bearer {token}");
    let r = put(
        &server.url,
        &format!("/v1/schools/{school}/blobs/{hash}?offset=0"),
        &[
            ("authorization", &auth),
            ("content-type", tpsync_client::FRAMES_CONTENT_TYPE),
        ],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let acked: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(acked["received"], 100_000);
    server.kill();
    server.restart();
    let client = server.client();
    let state = client
        .begin_upload(&token, school.as_str(), &hash, 250_000)
        .unwrap();
    assert_eq!(
        state.received, 100_000,
        "what was acknowledged survived the crash"
    );
    let done = upload(&client, &token, &school, &hash, &bytes, 3).unwrap();
    assert!(done.complete);
    let (_, got) = fetch_raw(&server.url, &token, &school, &hash);
    assert!(got == bytes);
}

#[test]
fn a_backup_carries_the_photos_and_a_restored_server_serves_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let mut server = TestServer::start(&dir_a);
    let county = County::setup(&server);
    let school = county::school(0);
    let token = county.teachers[0].access_token.clone();
    let mut phone = Phone::new(county.teachers[0].clone());
    let bytes = photo(120_000, 9);
    let hash = attach(&mut phone, &county.client, &school, &bytes, 9);
    upload(&county.client, &token, &school, &hash, &bytes, 3).unwrap();

    let file = tmp.path().join("county.backup");
    let mut out = std::fs::File::create(&file).unwrap();
    county
        .client
        .backup(&county.admin.access_token, &mut out)
        .expect("backup");
    drop(out);
    server.stop();
    let restored = tpsync_tests::server::run_tpsync(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--data",
        dir_b.to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&restored.stdout);
    assert!(
        restored.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert!(said.contains("and 1 attachments"), "{said}");

    let again = TestServer::start(&dir_b);
    let (status, got) = fetch_raw(&again.url, &token, &school, &hash);
    assert_eq!(status, 200);
    assert!(got == bytes, "the restored server serves the photo");
    let state = again
        .client()
        .begin_upload(&token, school.as_str(), &hash, 120_000)
        .unwrap();
    assert!(state.complete, "and knows the school sent it: {state:?}");
}

#[test]
fn the_limits_list_what_the_server_lacks_so_a_lost_copy_is_sent_again() {
    let data = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(data.path());
    let county = County::setup(&server);
    let school = county::school(0);
    let token = county.teachers[0].access_token.clone();
    let mut phone = Phone::new(county.teachers[0].clone());
    let bytes = photo(40_000, 10);
    let hash = attach(&mut phone, &county.client, &school, &bytes, 10);
    let limits = county
        .client
        .attachment_limits(&token, school.as_str())
        .unwrap();
    assert_eq!(
        limits.missing,
        vec![hash],
        "named by a record, not sent yet"
    );
    upload(&county.client, &token, &school, &hash, &bytes, 3).unwrap();
    assert!(county
        .client
        .attachment_limits(&token, school.as_str())
        .unwrap()
        .missing
        .is_empty());

    // The server loses its copy (a disk replaced, an older backup restored).
    server.kill();
    let hex = hash.to_hex();
    std::fs::remove_file(data.path().join("blobs/sha256").join(&hex[..2]).join(&hex)).unwrap();
    server.restart();
    let client = server.client();
    assert_eq!(fetch_raw(&server.url, &token, &school, &hash).0, 404);
    assert_eq!(
        client
            .attachment_limits(&token, school.as_str())
            .unwrap()
            .missing,
        vec![hash]
    );
    // The phone, told so, sends it again, and the server takes it.
    let done = upload(&client, &token, &school, &hash, &bytes, 3).unwrap();
    assert!(done.complete);
    let (status, got) = fetch_raw(&server.url, &token, &school, &hash);
    assert!(status == 200 && got == bytes);
}
