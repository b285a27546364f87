//! How fast the county report follows a sync: with 600 schools stored, one
//! school's teacher changes an enrollment figure and syncs over HTTP; the
//! clock runs from the sync's answer until `GET /v1/reports/county` (as the
//! county user, polled every millisecond) shows the new figure.
//!
//!     cargo bench -p tpsync-server --bench reports
//!
//! The server runs in this process (the library, on 127.0.0.1:0, its own
//! sled directory, default settings). Its 600 schools (12 townships; each
//! school a profile, 20 equipment items, 60 books, a checklist and the
//! county template's thresholds) are written through the server's own
//! document path before it starts, so the reports' first build reads them
//! all. `TPSYNC_BENCH_SCHOOLS` changes the count, `TPSYNC_BENCH_ROUNDS` the
//! rounds (default 40). Also printed: the read model's own update time
//! (one profile document absorbed, the school re-evaluated, its township's
//! and the county's rollups rebuilt), measured around `ReadModel::apply`.
//! Target (issue 6): median time until the report reflects the sync < 50 ms.

use std::time::{Duration, Instant};

use sync_core::indicators::reference_template;
use sync_core::records::{
    ChecklistRow, ChecklistRowStatus, IndicatorTemplate, SchoolProfile, SchoolType,
    TemplateSettings, ValueSource,
};
use sync_core::store::MemoryStorage;
use sync_core::workload::{sample_book, sample_equipment};
use sync_core::{
    CountyId, DeviceId, DocId, DocKind, EditContext, PeerId, RecordId, Replica, SchoolId,
};
use tpsync_client::{Client, ClientConfig};
use tpsync_server::ServerConfig;

const PASSWORD: &str = "bench-password-1";
const COUNTY: &str = "430123";

fn school(i: usize) -> SchoolId {
    SchoolId::new(format!("43012{i:05}")).unwrap()
}

fn ctx(now: i64) -> EditContext {
    EditContext {
        user: "bench-seed".parse().unwrap(),
        device: "bench-seed".parse().unwrap(),
        now_ms: now,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let n: usize = std::env::var("TPSYNC_BENCH_SCHOOLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let rounds: usize = std::env::var("TPSYNC_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let dir = tempfile::tempdir().unwrap();
    let st = tpsync_server::open(ServerConfig::new(dir.path())).unwrap();
    let now = tpsync_server::now_ms();

    // Accounts: the county, its schools, a teacher of school 0, a county user.
    let code = st.accounts.setup_code().unwrap().unwrap();
    st.accounts.setup(&code, "admin", PASSWORD, now).unwrap();
    st.accounts
        .set_county(CountyId::new(COUNTY).unwrap(), "基准县")
        .unwrap();
    let mut csv = String::from("学校标识码,学校名称,学校类型,乡镇代码,乡镇名称,一年级\n");
    for i in 0..n {
        let t = i % 12;
        let ty = if i % 5 == 0 {
            "教学点"
        } else {
            "完全小学"
        };
        csv.push_str(&format!(
            "{},第{i}小学,{ty},4301231{t:02},第{t}乡,30\n",
            school(i)
        ));
    }
    let imported = st
        .accounts
        .import_schools_csv(csv.as_bytes(), false)
        .unwrap();
    assert!(imported.errors.is_empty(), "{:?}", imported.errors);
    for (user, role, unit) in [
        (
            "teacher-0",
            tpsync_accounts::Role::Teacher,
            school(0).to_string(),
        ),
        ("county", tpsync_accounts::Role::County, COUNTY.to_string()),
    ] {
        st.accounts
            .create_user(
                tpsync_accounts::NewUser {
                    username: user.into(),
                    password: PASSWORD.into(),
                    role,
                    unit: Some(unit),
                },
                now,
            )
            .unwrap();
    }

    // Documents, through the server's own write path.
    let seeding = Instant::now();
    let c = ctx(now as i64);
    let (indicators, settings) = reference_template();
    st.hub
        .edit(&DocId::template(&CountyId::new(COUNTY).unwrap()), |d| {
            for ind in &indicators {
                d.insert::<IndicatorTemplate>(&c, RecordId::random(), ind)?;
            }
            d.update_singleton::<TemplateSettings>(&c, |s| *s = settings.clone())
        })
        .unwrap();
    for i in 0..n {
        let s = school(i);
        let doc = |k| DocId::school(&s, k).unwrap();
        st.hub
            .edit(&doc(DocKind::Profile), |d| {
                d.update_singleton::<SchoolProfile>(&c, |p| {
                    p.name = Some(format!("第{i}小学"));
                    p.school_type = Some(if i % 5 == 0 {
                        SchoolType::TeachingPoint
                    } else {
                        SchoolType::Primary
                    });
                    p.students_grade_1 = Some(20 + (i % 40) as u32);
                    p.students_grade_2 = Some(25);
                    p.teachers_total = Some(5);
                    p.teachers_qualified = Some(3 + (i % 3) as u32);
                    p.teachers_key = Some(1);
                    p.teachers_pe_arts = Some(1);
                    p.teaching_area_m2 = Some(200.0 + i as f64);
                    p.sports_area_m2 = Some(400.0);
                    p.multimedia_classrooms = Some(1 + (i % 2) as u32);
                })
            })
            .unwrap();
        st.hub
            .edit(&doc(DocKind::Equipment), |d| {
                for k in 0..20 {
                    d.insert(&c, RecordId::random(), &sample_equipment(k))?;
                }
                Ok(())
            })
            .unwrap();
        st.hub
            .edit(&doc(DocKind::Books), |d| {
                for k in 0..60 {
                    d.insert(&c, RecordId::random(), &sample_book(k))?;
                }
                Ok(())
            })
            .unwrap();
        st.hub
            .edit(&doc(DocKind::Checklist), |d| {
                for k in 1..=7 {
                    d.insert(
                        &c,
                        RecordId::random(),
                        &ChecklistRow {
                            indicator_code: format!("R{k}"),
                            value: None,
                            value_source: ValueSource::Computed,
                            evidence: None,
                            note: None,
                            status: ChecklistRowStatus::Active,
                            status_reason: None,
                        },
                    )?;
                }
                Ok(())
            })
            .unwrap();
    }
    println!(
        "seeded {n} schools through the server's document path in {:.1?}",
        seeding.elapsed()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server_state = st.clone();
    rt.spawn(async move {
        tpsync_server::run(listener, server_state, std::future::pending())
            .await
            .unwrap()
    });
    let url = format!("http://{addr}");
    let client = Client::new(&url, ClientConfig::default()).unwrap();
    let teacher = client
        .login(
            "teacher-0",
            PASSWORD,
            &DeviceId::new("bench-phone").unwrap(),
            None,
        )
        .unwrap();
    let county = client
        .login(
            "county",
            PASSWORD,
            &DeviceId::new("bench-county").unwrap(),
            None,
        )
        .unwrap();

    // The first build: every school read once.
    let started = Instant::now();
    let report_path = "/v1/reports/county";
    let get = |token: &str| -> Option<serde_json::Value> {
        let mut resp = ureq::get(&format!("{url}{report_path}"))
            .header("authorization", &format!("Bearer {token}"))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .ok()?;
        if resp.status() != 200 {
            return None;
        }
        resp.body_mut().read_json().ok()
    };
    loop {
        if let Some(r) = get(&county.access_token) {
            if r["schools"] == n {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the reports never got built"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "first build of the reports after start: {:.1?} for {n} schools",
        started.elapsed()
    );

    // The teacher's phone gets its school, then changes grade 1 each round.
    let mut phone = Replica::open(MemoryStorage::new());
    let scope = DocId::all_for_school(&school(0));
    let server_peer = PeerId::new("server").unwrap();
    client
        .sync(
            &teacher.access_token,
            &mut phone,
            &server_peer,
            &scope,
            None,
            None,
        )
        .unwrap();
    let code0 = school(0).to_string();
    let mut reflect_ms = Vec::new();
    let mut sync_ms = Vec::new();
    for round in 0..rounds {
        let students_g1 = 100 + round as u32;
        let c = ctx(tpsync_server::now_ms() as i64);
        phone
            .edit(&DocId::school(&school(0), DocKind::Profile).unwrap(), |d| {
                d.update_singleton::<SchoolProfile>(&c, |p| p.students_grade_1 = Some(students_g1))
            })
            .unwrap();
        let t0 = Instant::now();
        client
            .sync(
                &teacher.access_token,
                &mut phone,
                &server_peer,
                &scope,
                None,
                None,
            )
            .unwrap();
        let acked = Instant::now();
        sync_ms.push((acked - t0).as_secs_f64() * 1000.0);
        let want = (students_g1 + 25) as u64;
        loop {
            let r = get(&county.access_token).expect("the county report");
            let row = r["rows"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["code"] == code0.as_str())
                .unwrap()
                .clone();
            if row["students"] == want {
                break;
            }
            assert!(
                acked.elapsed() < Duration::from_secs(30),
                "never reflected: {row}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        reflect_ms.push(acked.elapsed().as_secs_f64() * 1000.0);
    }

    // The model's own update cost, without HTTP: re-absorb school 0's
    // profile into the running model.
    let profile = DocId::school(&school(0), DocKind::Profile).unwrap();
    let mut apply_ms = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        tpsync_server::reports::apply_docs(&st, std::slice::from_ref(&profile));
        apply_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    // One GET of the county report (serialising 600 rows), for scale.
    let mut get_ms = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        get(&county.access_token).unwrap();
        get_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }

    for v in [&mut reflect_ms, &mut sync_ms, &mut apply_ms, &mut get_ms] {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    }
    let median = percentile(&reflect_ms, 0.5);
    println!("\n{n} schools, {rounds} rounds (ms: median / p90 / max)");
    let line = |name: &str, v: &[f64]| {
        println!(
            "  {name:<52} {:>8.2} {:>8.2} {:>8.2}",
            percentile(v, 0.5),
            percentile(v, 0.9),
            v[v.len() - 1]
        )
    };
    line("sync answered → county report shows it", &reflect_ms);
    line("the teacher's sync (one profile change, HTTP)", &sync_ms);
    line("read model update (apply one document, rollups)", &apply_ms);
    line("GET /v1/reports/county (600 rows, JSON)", &get_ms);
    let pass = median < 50.0;
    println!(
        "\ntarget: median time until the county report reflects a sync < 50 ms: {median:.2} ms {}",
        if pass { "PASS" } else { "MISS" }
    );
    if !pass {
        std::process::exit(1);
    }
}
