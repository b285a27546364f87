//! `tpsync demo`: the real binary seeds a small county over HTTP against
//! itself, and a second start on the same directory serves it without
//! seeding again.
//!
//! Everything is checked through the HTTP API as the county user would see
//! it: a fresh county replica synced from the server holds every school's
//! documents with records in them, the reference template, teaching points
//! that name their central school, and schools that pass and fall short.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sync_core::indicators::{evaluate_school, reference_template, SchoolInput, Verdict};
use sync_core::records::{
    specs_for, Book, CatalogueEntry, ChecklistRow, EquipmentItem, ImprovementPlan,
    IndicatorTemplate, SchoolProfile, TemplateSettings,
};
use sync_core::store::MemoryStorage;
use sync_core::{CountyId, DocId, DocKind, RecordId, Replica, SchoolId};
use tpsync_client::{Client, Tokens};
use tpsync_tests::phone::fresh_view;
use tpsync_tests::server::{test_client, tpsync};

const SCHOOLS: usize = 8;
const PASSWORD: &str = "demo-2026";
const COUNTY: &str = "430199";
/// How long seeding may take before the test gives up (a debug build
/// seeds 8 schools in a few seconds).
const READY_TIMEOUT: Duration = Duration::from_secs(240);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `tpsync demo` child process.
struct Demo {
    child: Option<Child>,
    url: String,
    /// Everything it printed on stdout up to `demo ready`.
    printed: Vec<String>,
    log: Arc<Mutex<String>>,
}

impl Demo {
    /// Starts `tpsync demo` on `data` and waits for its `demo ready` line.
    fn start(data: &Path) -> Self {
        let mut child = tpsync()
            .arg("demo")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0", "--schools", &SCHOOLS.to_string()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tpsync demo");
        let log = Arc::new(Mutex::new(String::new()));
        keep_log(child.stderr.take().expect("piped stderr"), log.clone());
        let lines = read_lines(child.stdout.take().expect("piped stdout"));
        let mut demo = Demo {
            child: Some(child),
            url: String::new(),
            printed: Vec::new(),
            log,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("tpsync listening on ") {
                        demo.url = url.trim().to_owned();
                    }
                    let ready = line.starts_with("demo ready: ");
                    demo.printed.push(line);
                    if ready {
                        break;
                    }
                }
                Err(e) => panic!(
                    "tpsync demo on {} printed no `demo ready` line ({e:?}, exit status {:?});\nstdout:\n{}\nlog:\n{}",
                    data.display(),
                    demo.child.as_mut().and_then(|c| c.try_wait().ok().flatten()),
                    demo.printed.join("\n"),
                    demo.log()
                ),
            }
        }
        assert!(
            demo.url.starts_with("http://127.0.0.1:"),
            "no listening line before `demo ready`:\n{}",
            demo.printed.join("\n")
        );
        let ready = demo.printed.last().expect("the ready line");
        assert_eq!(ready, &format!("demo ready: {}/ui/", demo.url));
        // Keep draining stdout so the child never blocks on a full pipe.
        thread::spawn(move || for _ in lines {});
        demo
    }

    fn printed(&self, needle: &str) -> bool {
        self.printed.iter().any(|l| l.contains(needle))
    }

    fn client(&self) -> Client {
        test_client(&self.url)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// SIGTERM, then wait for a graceful exit.
    fn stop(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("the demo is running");
        // SAFETY: kill(2) on our own child, not reaped yet (its pid cannot
        // have been reused).
        let r = unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(r, 0, "SIGTERM failed: {}", std::io::Error::last_os_error());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = c.try_wait().expect("poll the demo") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "tpsync demo did not exit within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn read_lines(out: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn keep_log(mut err: impl Read + Send + 'static, log: Arc<Mutex<String>>) {
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match err.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => log
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    });
}

fn login(client: &Client, username: &str, device: &str) -> Tokens {
    client
        .login(
            username,
            PASSWORD,
            &device.parse().expect("device id"),
            Some(device),
        )
        .unwrap_or_else(|e| panic!("login {username} on {device}: {e}"))
}

/// Records per (school, record kind) in a replica, for every school
/// document; a school profile counts 1 once its name is filled in.
fn record_counts(
    replica: &mut Replica<MemoryStorage>,
    schools: &[String],
) -> BTreeMap<(String, &'static str), usize> {
    let mut counts = BTreeMap::new();
    for code in schools {
        let school = SchoolId::new(code.as_str()).unwrap();
        for doc in DocId::all_for_school(&school) {
            let d = replica.doc(&doc).expect("load a school document");
            for spec in specs_for(doc.kind()) {
                let n = if spec.singleton {
                    let p: SchoolProfile = d.singleton().expect("read the profile");
                    usize::from(p.name.is_some())
                } else {
                    d.record_ids(spec).expect("list records").len()
                };
                counts.insert((code.clone(), spec.name), n);
            }
        }
    }
    counts
}

fn doc(school: &str, kind: DocKind) -> DocId {
    DocId::school(&SchoolId::new(school).unwrap(), kind).unwrap()
}

fn values<T>(v: Vec<(RecordId, T)>) -> Vec<T> {
    v.into_iter().map(|(_, x)| x).collect()
}

/// Checks the seeded county as the county user sees it; returns the record
/// counts per school and kind.
fn check_county(demo: &Demo, device: &str) -> BTreeMap<(String, &'static str), usize> {
    let client = demo.client();
    let admin = login(&client, "admin", &format!("{device}-admin"));
    let listed = client.schools(&admin.access_token).expect("list schools");
    assert_eq!(listed.len(), SCHOOLS, "{listed:?}");
    let codes: Vec<String> = listed
        .iter()
        .map(|s| s.code.clone().expect("a school code"))
        .collect();
    let central_of = |township: &Option<String>| -> String {
        listed
            .iter()
            .find(|s| s.township == *township && s.school_type.as_deref() == Some("central"))
            .and_then(|s| s.code.clone())
            .unwrap_or_else(|| panic!("township {township:?} has no central school: {listed:?}"))
    };
    let devices = client.devices(&admin.access_token).expect("list devices");
    let pads = devices
        .iter()
        .filter(|d| d.id.as_deref().is_some_and(|id| id.starts_with("pad-")))
        .count();
    assert_eq!(pads, 2, "two teachers have a second device: {devices:?}");

    let county = login(&client, "county", device);
    let me = client.me(&county.access_token).expect("the county's scope");
    assert_eq!(
        me.scope.all().len(),
        SCHOOLS * sync_core::DocKind::SCHOOL_KINDS.len() + 1,
        "every school's documents and the template: {:?}",
        me.scope
    );
    let mut view = fresh_view(&client, &county, None).expect("sync a fresh county replica");

    // The template: the reference thresholds and settings, the catalogue.
    let template = DocId::template(&CountyId::new(COUNTY).unwrap());
    let t = view.doc(&template).expect("the template");
    let (reference, reference_settings) = reference_template();
    let key = |i: &IndicatorTemplate| format!("{} {:?} {}", i.code, i.stage, i.threshold);
    let mut want: Vec<String> = reference.iter().map(key).collect();
    let mut got: Vec<String> = values(t.list::<IndicatorTemplate>().unwrap())
        .iter()
        .map(key)
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "the template holds the reference thresholds");
    let settings: TemplateSettings = t.singleton().unwrap();
    assert_eq!(settings, reference_settings);
    let indicators = values(t.list::<IndicatorTemplate>().unwrap());
    let catalogue = t.list::<CatalogueEntry>().unwrap();
    assert!(catalogue.len() >= 8, "{catalogue:?}");

    // Every school: its documents hold records; points name their parent.
    let counts = record_counts(&mut view, &codes);
    let mut verdicts = (0, 0);
    for s in &listed {
        let code = s.code.clone().unwrap();
        let n = |kind: &str| counts[&(code.clone(), kind)];
        assert_eq!(n("SchoolProfile"), 1, "{code}: profile");
        assert!(n("EquipmentItem") >= 10, "{code}: {counts:?}");
        assert!(n("Book") >= 20, "{code}: {counts:?}");
        assert!(n("ArchiveBox") >= 2, "{code}: {counts:?}");
        assert!(n("ArchiveItem") >= catalogue.len(), "{code}: {counts:?}");
        assert_eq!(n("ChecklistRow"), 8, "{code}: R1–R7 and books");
        assert_eq!(n("StocktakeSession"), 1, "{code}: {counts:?}");
        assert!(n("StocktakeLine") >= 3, "{code}: {counts:?}");
        assert!(n("ReviewEvent") >= 1, "{code}: the teacher submitted");

        let profile: SchoolProfile = view
            .doc(&doc(&code, DocKind::Profile))
            .unwrap()
            .singleton()
            .unwrap();
        assert_eq!(profile.school_code.as_deref(), Some(code.as_str()));
        assert_eq!(profile.name, s.name);
        if s.school_type.as_deref() == Some("teaching_point") {
            assert_eq!(
                profile.parent_school,
                Some(central_of(&s.township)),
                "{code} names its central school"
            );
        } else {
            assert_eq!(profile.parent_school, None, "{code}");
        }

        // The school against the template, as the dashboards evaluate it.
        let equipment = values(
            view.doc(&doc(&code, DocKind::Equipment))
                .unwrap()
                .list::<EquipmentItem>()
                .unwrap(),
        );
        let books = values(
            view.doc(&doc(&code, DocKind::Books))
                .unwrap()
                .list::<Book>()
                .unwrap(),
        );
        let checklist = view.doc(&doc(&code, DocKind::Checklist)).unwrap();
        let rows = checklist.list::<ChecklistRow>().unwrap();
        let plans = checklist.list::<ImprovementPlan>().unwrap();
        let evaluation = evaluate_school(&SchoolInput {
            profile: &profile,
            equipment: &equipment,
            books: &books,
            rows: &rows,
            plans: &plans,
            indicators: &indicators,
            settings: &settings,
        });
        let passes = evaluation
            .stages
            .iter()
            .all(|st| matches!(st.verdict, Verdict::Pass { .. }));
        if passes {
            verdicts.0 += 1;
        } else {
            verdicts.1 += 1;
            assert!(
                !plans.is_empty(),
                "{code} falls short and has improvement plans"
            );
        }
    }
    assert!(
        verdicts.0 > 0 && verdicts.1 > 0,
        "some schools pass and some fall short: {verdicts:?}"
    );
    counts
}

#[test]
fn the_demo_seeds_a_county_once_and_serves_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");

    let mut first = Demo::start(&data);
    assert!(
        first.printed("seeding the demo county"),
        "a new directory is seeded:\n{}",
        first.printed.join("\n")
    );
    for login in ["admin", "county", "yunxi", "shimen", "baisha", "yunxi-01"] {
        assert!(
            first
                .printed
                .iter()
                .any(|l| l.split_whitespace().nth(1) == Some(login) && l.contains(PASSWORD)),
            "the login table lists {login}:\n{}",
            first.printed.join("\n")
        );
    }
    let counts = check_county(&first, "check-1");
    let status = first.stop();
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        first.log()
    );

    let mut second = Demo::start(&data);
    assert!(
        second.printed("already holds the demo county") && !second.printed("seeding"),
        "a seeded directory is served as it is:\n{}",
        second.printed.join("\n")
    );
    let again = check_county(&second, "check-2");
    assert_eq!(again, counts, "nothing was seeded twice");
    let status = second.stop();
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        second.log()
    );
}
