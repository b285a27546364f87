//! The dashboard pages (`/ui/…`) against the real `tpsync serve`, with
//! three schools recorded through the real sync path.
//!
//! In headless Chromium: a wrong password shows the error and sets no
//! cookie; the county user signs in through the form and the county
//! overview shows the same numbers as `GET /v1/reports/county` (school
//! count, pass counts, every CV, every indicator's schools meeting it); a
//! school's page shows the same R1–R7 as `GET /v1/reports/schools/{code}`;
//! neither page scrolls sideways on a 390×844 phone; a township user
//! approves a submitted section with the page's button and the JSON API
//! shows it approved; another township's school is a refusal page.
//!
//! Over plain HTTP: every page without a cookie redirects to the sign-in
//! page; a stale access cookie is replaced through the refresh cookie; a
//! form from another origin is refused; a comment holding `<script>` is
//! shown escaped.
//!
//! Attachments: a teacher's phone records photos of an equipment item (one
//! sent with its thumbnail, one not sent yet, one removed); the county
//! user's school page counts them, its thumbnail loads under the page's
//! Content-Security-Policy, "查看原图" opens the exact bytes, and a teacher
//! of another school gets the refusal page for them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sync_core::indicators::reference_template;
use sync_core::records::{
    ArchiveBox, ArchiveItem, ArchiveItemStatus, AttachedTo, Attachment, AttachmentStatus,
    BoxStatus, CatalogueEntry, ChecklistRow, ChecklistRowStatus, EntryStatus, EquipmentItem,
    EquipmentStatus, IndicatorTemplate, Retention, SchoolProfile, SchoolType, TeachingPointPolicy,
    TemplateSettings, ValueSource,
};
use sync_core::workload::{sample_book, sample_equipment};
use sync_core::{DocId, DocKind, RecordId, SchoolId};
use tpsync_blobs::BlobHash;
use tpsync_tests::browser::{Browser, Page};
use tpsync_tests::county::{self, County, COUNTY_USER, PASSWORD};
use tpsync_tests::http::{get, post};
use tpsync_tests::phone::Phone;
use tpsync_tests::server::TestServer;

fn get_json(url: &str, token: &str, path: &str) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let r = get(url, path, &[("authorization", &auth)]);
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

fn post_json(url: &str, token: &str, path: &str, body: Value) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let r = post(
        url,
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body.to_string().as_bytes(),
    );
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

/// Polls `path` until `ok` holds (the read model follows commits a few
/// milliseconds behind).
fn eventually(url: &str, token: &str, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, v) = get_json(url, token, path);
        if status == 200 && ok(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never got there: {status} {v:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn doc(school: &SchoolId, kind: DocKind) -> DocId {
    DocId::school(school, kind).unwrap()
}

/// The county's template: the reference thresholds, teaching points under
/// 50 students left out, a two-item archive catalogue, a due date.
fn seed_template(fx: &County) -> Vec<RecordId> {
    let mut phone = Phone::new(fx.login(COUNTY_USER, "county-seed"));
    let (indicators, mut settings) = reference_template();
    settings.review_due = Some("2099-12-31".into());
    settings.teaching_point_policy = Some(TeachingPointPolicy::ExcludeUnder);
    settings.teaching_point_min_students = Some(50);
    let ctx = phone.ctx();
    let entries = vec![RecordId::random(), RecordId::random()];
    let e2 = entries.clone();
    phone
        .replica
        .edit(&county::template(), |d| {
            for ind in &indicators {
                d.insert::<IndicatorTemplate>(&ctx, RecordId::random(), ind)?;
            }
            for (i, id) in e2.iter().enumerate() {
                d.insert(
                    &ctx,
                    *id,
                    &CatalogueEntry {
                        code: format!("A{}", i + 1),
                        title: ["学校章程", "教学仪器设备配备清单"][i].into(),
                        category: Some("办学条件".into()),
                        retention: Some(Retention::Years30),
                        indicator_code: None,
                        status: EntryStatus::Active,
                    },
                )?;
            }
            d.update_singleton::<TemplateSettings>(&ctx, |s| *s = settings.clone())
        })
        .unwrap();
    phone.sync(&fx.client, &[county::template()]).unwrap();
    entries
}

/// One school's figures: students per grade 1–6, teachers, areas,
/// classrooms, equipment items (each in use, one unit at `price_yuan`),
/// books (one copy each).
struct Figures {
    name: &'static str,
    school_type: SchoolType,
    grades: [u32; 6],
    qualified: u32,
    key: u32,
    pe_arts: u32,
    teaching_m2: f64,
    sports_m2: f64,
    multimedia: u32,
    items: usize,
    price_yuan: i64,
    books: usize,
}

/// Records a school on its teacher's phone, offline, then syncs it.
fn record_school(
    phone: &mut Phone,
    fx: &County,
    school: &SchoolId,
    f: &Figures,
    catalogue: &[RecordId],
) {
    let ctx = phone.ctx();
    phone
        .replica
        .edit(&doc(school, DocKind::Profile), |d| {
            d.update_singleton::<SchoolProfile>(&ctx, |p| {
                p.name = Some(f.name.into());
                p.school_type = Some(f.school_type);
                p.students_grade_1 = Some(f.grades[0]);
                p.students_grade_2 = Some(f.grades[1]);
                p.students_grade_3 = Some(f.grades[2]);
                p.students_grade_4 = Some(f.grades[3]);
                p.students_grade_5 = Some(f.grades[4]);
                p.students_grade_6 = Some(f.grades[5]);
                p.teachers_total = Some(f.qualified + 2);
                p.teachers_qualified = Some(f.qualified);
                p.teachers_key = Some(f.key);
                p.teachers_pe_arts = Some(f.pe_arts);
                p.teaching_area_m2 = Some(f.teaching_m2);
                p.sports_area_m2 = Some(f.sports_m2);
                p.multimedia_classrooms = Some(f.multimedia);
            })
        })
        .unwrap();
    phone
        .replica
        .edit(&doc(school, DocKind::Equipment), |d| {
            for n in 0..f.items {
                let mut item: EquipmentItem = sample_equipment(n);
                item.quantity = 1;
                item.unit_price_fen = f.price_yuan * 100;
                item.status = EquipmentStatus::InUse;
                d.insert(&ctx, RecordId::random(), &item)?;
            }
            Ok(())
        })
        .unwrap();
    phone
        .replica
        .edit(&doc(school, DocKind::Books), |d| {
            for n in 0..f.books {
                d.insert(&ctx, RecordId::random(), &sample_book(n))?;
            }
            Ok(())
        })
        .unwrap();
    phone
        .replica
        .edit(&doc(school, DocKind::Checklist), |d| {
            for code in (1..=7).map(|i| format!("R{i}")).chain(["BOOKS".to_owned()]) {
                d.insert(
                    &ctx,
                    RecordId::random(),
                    &ChecklistRow {
                        indicator_code: code,
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
    let box_id = RecordId::random();
    phone
        .replica
        .edit(&doc(school, DocKind::Archive), |d| {
            d.insert(
                &ctx,
                box_id,
                &ArchiveBox {
                    box_no: "2026-001".into(),
                    year: 2026,
                    retention: Retention::Years30,
                    category: "办学条件".into(),
                    first_item_no: Some("1".into()),
                    last_item_no: Some("1".into()),
                    status: BoxStatus::Active,
                    status_reason: None,
                },
            )?;
            d.insert(
                &ctx,
                RecordId::random(),
                &ArchiveItem {
                    catalogue_entry: catalogue[0],
                    status: ArchiveItemStatus::Filed,
                    box_id: Some(box_id),
                    folder_no: Some("1".into()),
                    title: Some("学校章程".into()),
                    document_no: None,
                    doc_date: None,
                    pages: Some(12),
                    note: None,
                    status_reason: None,
                },
            )
            .map(|_| ())
        })
        .unwrap();
    phone.sync_all(&fx.client).unwrap();
}

/// 200 students; R6 far short (10 × 1,000 元 ÷ 200 = 50 元 against 2,000).
fn central_school() -> Figures {
    Figures {
        name: "青山镇中心小学",
        school_type: SchoolType::Primary,
        grades: [40, 40, 30, 30, 30, 30],
        qualified: 10,
        key: 2,
        pe_arts: 2,
        teaching_m2: 1000.0,
        sports_m2: 1600.0,
        multimedia: 5,
        items: 10,
        price_yuan: 1000,
        books: 30,
    }
}

/// 120 students, every indicator met (60 × 5,000 元 ÷ 120 = 2,500 元).
fn good_school() -> Figures {
    Figures {
        name: "白水乡中心小学",
        school_type: SchoolType::Primary,
        grades: [20, 20, 20, 20, 20, 20],
        qualified: 6,
        key: 2,
        pe_arts: 2,
        teaching_m2: 700.0,
        sports_m2: 1000.0,
        multimedia: 3,
        items: 60,
        price_yuan: 5000,
        books: 40,
    }
}

/// A teaching point of 30 students (left out: under 50).
fn teaching_point() -> Figures {
    Figures {
        name: "青山村教学点",
        school_type: SchoolType::TeachingPoint,
        grades: [8, 7, 6, 5, 4, 0],
        qualified: 1,
        key: 0,
        pe_arts: 0,
        teaching_m2: 90.0,
        sports_m2: 200.0,
        multimedia: 1,
        items: 3,
        price_yuan: 2000,
        books: 10,
    }
}

/// The county with the template seeded and schools 0 (central school),
/// 1 (teaching point) and 2 (another township's good school) recorded
/// through sync; returns once the county report has all three.
fn county_with_schools(server: &TestServer) -> County {
    let fx = County::setup(server);
    let catalogue = seed_template(&fx);
    for (i, figures) in [
        (0, central_school()),
        (1, teaching_point()),
        (2, good_school()),
    ] {
        let mut phone = Phone::new(fx.teachers[i].clone());
        record_school(&mut phone, &fx, &county::school(i), &figures, &catalogue);
    }
    eventually(
        &server.url,
        &fx.county.access_token,
        "/v1/reports/county",
        |r| {
            [(0, 200), (1, 30), (2, 120)].iter().all(|(i, n)| {
                r["rows"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|row| row["code"] == county::SCHOOLS[*i].0 && row["students"] == *n)
            })
        },
    );
    fx
}

/// Every element with a `data-testid` on the page: testid → its
/// `data-value` (null when it has none).
fn figures(page: &Page) -> BTreeMap<String, Value> {
    let v = page.eval(
        "Object.fromEntries(Array.from(document.querySelectorAll('[data-testid]'), \
         e => [e.dataset.testid, e.hasAttribute('data-value') ? e.dataset.value : null]))",
    );
    serde_json::from_value(v).expect("a map of strings")
}

/// The number a figure shows, as `f64`; `None` for a figure marked missing.
fn number(figs: &BTreeMap<String, Value>, testid: &str) -> Option<f64> {
    let v = figs.get(testid).unwrap_or_else(|| {
        panic!(
            "no [data-testid={testid}] on the page; have {:?}",
            figs.keys()
        )
    });
    v.as_str().map(|s| {
        s.parse()
            .unwrap_or_else(|_| panic!("[data-testid={testid}] data-value {s:?} is not a number"))
    })
}

fn assert_figure(figs: &BTreeMap<String, Value>, testid: &str, json: &Value) {
    assert_eq!(
        number(figs, testid),
        json.as_f64(),
        "[data-testid={testid}] differs from the JSON API's {json}"
    );
}

fn no_sideways_scroll(page: &Page, what: &str) {
    let w = page.eval("document.documentElement.scrollWidth");
    assert!(
        w.as_u64().is_some_and(|w| w <= 390),
        "{what} scrolls sideways on a 390 px phone: scrollWidth {w}"
    );
}

/// The JSON report at `api` and the figures of the page at `ui`, read
/// from the same version of the read model (the reports follow commits a
/// few milliseconds behind: a change landing between the two reads is
/// read again).
fn same_version(
    page: &Page,
    url: &str,
    token: &str,
    api: &str,
    ui: &str,
) -> (Value, BTreeMap<String, Value>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, json) = get_json(url, token, api);
        assert_eq!(status, 200, "{api}: {json}");
        page.goto(&format!("{url}{ui}"));
        let figs = figures(page);
        let shown = number(&figs, "version");
        if shown == json["version"].as_f64() {
            return (json, figs);
        }
        assert!(
            Instant::now() < deadline,
            "{ui} shows version {shown:?}, {api} {}",
            json["version"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// With `TPSYNC_UI_SCREENSHOTS=<dir>`, saves a full-page PNG of the page
/// there (for a person to look at the pages as a test left them).
fn keep_screenshot(page: &Page, name: &str) {
    if let Some(dir) = std::env::var_os("TPSYNC_UI_SCREENSHOTS") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        page.screenshot(&dir.join(format!("{name}.png")));
    }
}

fn sign_in(page: &Page, username: &str, password: &str) {
    page.fill("#username", username)
        .fill("#password", password)
        .click("form[action='/ui/login'] button[type=submit]");
}

#[test]
fn dashboards_in_a_browser_show_the_json_apis_numbers() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path());
    let url = server.url.clone();
    let fx = county_with_schools(&server);
    let central = county::SCHOOLS[0].0;
    let other_township_school = county::SCHOOLS[2].0;
    let county_t = &fx.county.access_token;
    let teacher = &fx.teachers[0].access_token;
    // The teacher submits the profile for the township to review.
    let (s, v) = post_json(
        &url,
        teacher,
        &format!("/v1/schools/{central}/review"),
        json!({"section": "profile", "action": "submit"}),
    );
    assert_eq!(s, 200, "{v}");
    let prepared = started.elapsed();

    let browser = Browser::launch();
    // Without a session the overview sends the browser to sign in.
    let page = browser.open(&format!("{url}/ui/county"));
    assert!(
        page.url()
            .starts_with(&format!("{url}/ui/login?next=%2Fui%2Fcounty")),
        "{}",
        page.url()
    );

    // A wrong password: the error, and no cookie at all.
    sign_in(&page, COUNTY_USER, "not-the-password");
    assert!(
        page.text("[data-testid=login-error]")
            .contains("用户名或密码不对"),
        "{}",
        page.text("body")
    );
    for name in ["tpsync_access", "tpsync_refresh", "tpsync_device"] {
        assert_eq!(page.cookie(name), None, "{name} set after a wrong password");
    }

    // The county user signs in and lands on the overview.
    sign_in(&page, COUNTY_USER, PASSWORD);
    assert_eq!(page.url(), format!("{url}/ui/county"));
    assert!(page.cookie("tpsync_access").is_some());
    assert!(page.cookie("tpsync_refresh").is_some());
    assert!(page
        .cookie("tpsync_device")
        .is_some_and(|d| d.starts_with("web-") && d.len() == 20));

    // Its numbers are the JSON API's.
    let (county_json, figs) =
        same_version(&page, &url, county_t, "/v1/reports/county", "/ui/county");
    assert_figure(&figs, "schools", &county_json["schools"]);
    let stages = county_json["stages"].as_array().unwrap();
    assert!(!stages.is_empty(), "{county_json:#}");
    let mut cvs = 0;
    for stage in stages {
        let s = stage["stage"].as_str().unwrap();
        for key in ["pass", "fail", "undetermined"] {
            assert_figure(&figs, &format!("{key}-{s}"), &stage[key]);
        }
        assert_figure(&figs, &format!("stage-{s}-schools"), &stage["schools"]);
        for ind in stage["indicators"].as_array().unwrap() {
            let code = ind["code"].as_str().unwrap();
            assert_figure(&figs, &format!("cv-{s}-{code}"), &ind["cv"]["cv"]);
            assert_figure(&figs, &format!("cv-bar-{s}-{code}"), &ind["cv"]["cv"]);
            assert_figure(
                &figs,
                &format!("meeting-{s}-{code}"),
                &ind["schools_meeting"],
            );
            assert_figure(
                &figs,
                &format!("meeting-bar-{s}-{code}"),
                &ind["schools_meeting"],
            );
            assert_figure(&figs, &format!("threshold-{s}-{code}"), &ind["threshold"]);
            assert_figure(&figs, &format!("min-{s}-{code}"), &ind["min"]);
            assert_figure(&figs, &format!("cv-limit-{s}-{code}"), &ind["cv_limit"]);
            cvs += ind["cv"]["cv"].is_f64() as usize;
        }
    }
    assert!(
        cvs >= 7,
        "two schools with values give a CV for R1–R7: {county_json:#}"
    );
    let primary = stages.iter().find(|s| s["stage"] == "primary").unwrap();
    assert_eq!(
        (primary["pass"].as_u64(), primary["fail"].as_u64()),
        (Some(1), Some(1)),
        "the good school passes, the central school (R6) fails"
    );
    assert_eq!(
        primary["left_out"][0]["code"],
        county::SCHOOLS[1].0,
        "the teaching point"
    );
    assert!(page.exists("[data-testid=left-out-primary]"));
    assert!(page.exists(&format!(
        "[data-testid=school-{}] [data-testid=teaching-point]",
        county::SCHOOLS[1].0
    )));
    for row in county_json["rows"].as_array().unwrap() {
        let code = row["code"].as_str().unwrap();
        assert_eq!(
            page.attr(&format!("[data-testid=school-{code}]"), "data-students"),
            Some(row["students"].to_string()),
            "students of {code}"
        );
    }
    for t in county_json["townships"].as_array().unwrap() {
        assert!(page.exists(&format!(
            "[data-testid=township-{}]",
            t["code"].as_str().unwrap()
        )));
    }
    assert_eq!(
        page.texts("svg").len(),
        3 * stages.len(),
        "three charts per stage"
    );

    // A school's page: R1–R7 and books as GET /v1/reports/schools/{code}.
    page.click(&format!(
        "[data-testid=school-{central}] a[href='/ui/schools/{central}']"
    ));
    assert_eq!(page.url(), format!("{url}/ui/schools/{central}"));
    let (school_json, figs) = same_version(
        &page,
        &url,
        county_t,
        &format!("/v1/reports/schools/{central}"),
        &format!("/ui/schools/{central}"),
    );
    for stage in school_json["evaluation"]["stages"].as_array().unwrap() {
        let s = stage["stage"].as_str().unwrap();
        assert_eq!(
            figs.get(&format!("verdict-{s}")).and_then(Value::as_str),
            stage["verdict"]["verdict"].as_str()
        );
        assert_figure(&figs, &format!("students-{s}"), &stage["students"]);
        let rows = stage["indicators"]
            .as_array()
            .unwrap()
            .iter()
            .chain([&stage["books"]]);
        let mut n = 0;
        for ind in rows {
            let code = ind["code"].as_str().unwrap();
            assert_figure(&figs, &format!("value-{s}-{code}"), &ind["value"]);
            assert_figure(&figs, &format!("threshold-{s}-{code}"), &ind["threshold"]);
            assert_eq!(
                figs[&format!("meets-{s}-{code}")].as_str(),
                ind["meets"]
                    .as_bool()
                    .map(|b| if b { "true" } else { "false" }),
                "{code}"
            );
            n += 1;
        }
        assert_eq!(n, 8, "R1–R7 and books");
    }
    assert_eq!(number(&figs, "value-primary-R6"), Some(50.0));
    assert!(
        page.exists("[data-testid=below-threshold] tr[data-code=R6]"),
        "R6 is a gap"
    );
    // The county sees the sections' state but has no button for them.
    assert_eq!(figs["review-profile"].as_str(), Some("submitted"));
    assert!(!page.exists("[data-testid=approve-profile]"));

    // On a phone neither page scrolls sideways.
    page.set_phone_viewport(390, 844);
    page.goto(&format!("{url}/ui/schools/{central}"));
    no_sideways_scroll(&page, "the school page");
    keep_screenshot(&page, "school-phone");
    page.goto(&format!("{url}/ui/county"));
    no_sideways_scroll(&page, "the county overview");
    keep_screenshot(&page, "county-phone");
    page.goto(&format!("{url}/ui/gaps"));
    no_sideways_scroll(&page, "the gaps page");
    keep_screenshot(&page, "gaps-phone");
    page.goto(&format!("{url}/ui/freshness"));
    no_sideways_scroll(&page, "the freshness page");
    page.set_viewport(1280, 800);
    page.goto(&format!("{url}/ui/county"));
    keep_screenshot(&page, "county-desktop");

    // The township user (same browser: the device id changes hands) approves
    // the submitted profile with the page's button.
    page.click("header form[action='/ui/logout'] button");
    assert!(
        page.url().starts_with(&format!("{url}/ui/login")),
        "{}",
        page.url()
    );
    assert_eq!(page.cookie("tpsync_access"), None);
    sign_in(&page, &county::township_name(0), PASSWORD);
    assert_eq!(
        page.url(),
        format!("{url}/ui/townships/{}", county::TOWNSHIPS[0].0)
    );
    page.goto(&format!("{url}/ui/schools/{central}"));
    assert!(page.exists("[data-testid=return-profile] textarea[name=comment]"));
    keep_screenshot(&page, "school-township-desktop");
    page.click("[data-testid=approve-profile] button");
    assert!(
        page.url()
            .starts_with(&format!("{url}/ui/schools/{central}?done=approve.profile")),
        "{}",
        page.url()
    );
    assert!(page
        .text("[data-testid=banner-ok]")
        .contains("学校基本情况"));
    assert_eq!(
        page.attr("[data-testid=review-profile]", "data-value")
            .as_deref(),
        Some("approved")
    );
    let (_, after) = get_json(&url, county_t, &format!("/v1/reports/schools/{central}"));
    assert_eq!(after["review"][0]["section"], "profile");
    assert_eq!(
        after["review"][0]["status"], "approved",
        "{:#}",
        after["review"][0]
    );
    assert!(!after["review"][0]["approved_heads"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        after["review"][0]["events"][1]["by_user"],
        county::township_name(0)
    );

    // Another township's school: a refusal page, not the data.
    page.goto(&format!("{url}/ui/schools/{other_township_school}"));
    assert_eq!(
        page.attr("[data-testid=error]", "data-status").as_deref(),
        Some("403")
    );
    assert!(!page.exists("[data-testid=review]"));
    assert!(
        !page.html().contains(county::SCHOOLS[2].1),
        "the school's name leaked"
    );
    page.goto(&format!("{url}/ui/county"));
    assert_eq!(
        page.attr("[data-testid=error]", "data-status").as_deref(),
        Some("403")
    );

    drop(page);
    drop(browser);
    server.stop();
    eprintln!(
        "dashboard_browser: data ready in {prepared:.1?}, whole test {:.1?}",
        started.elapsed()
    );
}

/// Plain HTTP, no redirects followed, cookies by hand.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

struct Answer {
    status: u16,
    location: Option<String>,
    set_cookies: Vec<String>,
    headers: ureq::http::HeaderMap,
    body: String,
}

fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut r = r.expect("HTTP request");
    let headers = r.headers().clone();
    Answer {
        status: r.status().as_u16(),
        location: headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        set_cookies: headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect(),
        body: r.body_mut().read_to_string().unwrap_or_default(),
        headers,
    }
}

fn http_get(url: &str, path: &str, cookie: Option<&str>) -> Answer {
    let mut req = agent().get(format!("{url}{path}"));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    answer(req.call())
}

fn http_form(
    url: &str,
    path: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
    form: &str,
) -> Answer {
    let mut req = agent()
        .post(format!("{url}{path}"))
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    answer(req.send(form.as_bytes()))
}

/// `name=value` of a `Set-Cookie` line named `name`.
fn cookie_pair(set_cookies: &[String], name: &str) -> Option<String> {
    set_cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn pages_need_a_session_refresh_it_and_escape_what_users_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path());
    let url = server.url.clone();
    let fx = County::setup(&server);
    let catalogue = seed_template(&fx);
    let school = county::school(0);
    let code = school.as_str();
    let mut phone = Phone::new(fx.teachers[0].clone());
    record_school(&mut phone, &fx, &school, &central_school(), &catalogue);

    // Without a cookie every page redirects to the sign-in page, and says
    // where it was going.
    let pages = [
        "/ui/".to_owned(),
        "/ui/county".to_owned(),
        format!("/ui/townships/{}", county::TOWNSHIPS[0].0),
        format!("/ui/schools/{code}"),
        "/ui/gaps?days=3".to_owned(),
        "/ui/freshness".to_owned(),
    ];
    for p in &pages {
        let a = http_get(&url, p, None);
        assert_eq!(a.status, 303, "GET {p}: {}", a.body);
        assert_eq!(
            a.location,
            Some(format!("/ui/login?next={}", enc(p))),
            "GET {p}"
        );
    }
    let a = http_form(
        &url,
        &format!("/ui/schools/{code}/review"),
        None,
        None,
        "section=profile&action=approve",
    );
    assert_eq!(a.status, 303);
    assert_eq!(
        a.location,
        Some(format!(
            "/ui/login?next={}",
            enc(&format!("/ui/schools/{code}"))
        ))
    );
    let a = http_get(&url, "/ui/no-such-page", None);
    assert_eq!(a.status, 404);
    assert!(a.body.contains("找不到"), "{}", a.body);
    let a = http_get(&url, "/", None);
    assert_eq!((a.status, a.location.as_deref()), (303, Some("/ui/")));
    // A garbage cookie is no session either, and is cleared.
    let a = http_get(&url, "/ui/county", Some("tpsync_access=not.a.token"));
    assert_eq!(a.status, 303);
    assert!(
        a.set_cookies
            .iter()
            .any(|c| c.starts_with("tpsync_access=;") && c.contains("Max-Age=0")),
        "{:?}",
        a.set_cookies
    );

    let login = http_get(&url, "/ui/login?next=%2Fui%2Fgaps", None);
    assert_eq!(login.status, 200);
    assert!(
        login.body.contains("name=\"next\" value=\"/ui/gaps\""),
        "{}",
        login.body
    );
    // An outside `next` is not followed.
    let a = http_form(
        &url,
        "/ui/login",
        None,
        None,
        &format!(
            "username={}&password={}&next=%2F%2Fevil.example%2F",
            enc(&county::township_name(0)),
            enc(PASSWORD)
        ),
    );
    assert_eq!(
        (a.status, a.location.as_deref()),
        (303, Some("/ui/")),
        "{}",
        a.body
    );
    for c in &a.set_cookies {
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/"),
            "{c}"
        );
    }
    let access = cookie_pair(&a.set_cookies, "tpsync_access").expect("access cookie");
    let refresh = cookie_pair(&a.set_cookies, "tpsync_refresh").expect("refresh cookie");
    let device = cookie_pair(&a.set_cookies, "tpsync_device").expect("device cookie");
    let session = format!("{access}; {refresh}; {device}");

    // A comment with markup, written through the JSON API, is shown as text.
    let (s, v) = post_json(
        &url,
        &fx.teachers[0].access_token,
        &format!("/v1/schools/{code}/review"),
        json!({"section": "profile", "action": "submit"}),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = post_json(
        &url,
        &fx.townships[0].access_token,
        &format!("/v1/schools/{code}/review"),
        json!({"section": "profile", "action": "return", "comment": "<script>alert('x')</script> 请补&充"}),
    );
    assert_eq!(s, 200, "{v}");
    let page = http_get(&url, &format!("/ui/schools/{code}"), Some(&session));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("&lt;script&gt;alert('x')&lt;/script&gt; 请补&amp;充"),
        "the comment is not shown escaped: {}",
        page.body
    );
    assert!(
        !page.body.contains("<script"),
        "markup from a comment reached the page"
    );
    let csp = page
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        page.body.starts_with("<!DOCTYPE html>"),
        "{}",
        &page.body[..40.min(page.body.len())]
    );

    // The page's download links give the same spreadsheets as the API,
    // with the session's cookies; another township's school is refused.
    for link in [
        format!("/ui/schools/{code}/ledgers/equipment.xlsx"),
        format!("/ui/schools/{code}/ledgers/archive.xlsx"),
        format!("/ui/exports/school.xlsx?school={code}"),
    ] {
        let href = format!("href=\"{}\"", link.replace('&', "&amp;"));
        assert!(
            page.body.contains(&href),
            "no link {href} on the school's page"
        );
        let (status, headers, body) = http_bytes(&url, &link, Some(&session), None);
        assert_eq!(status, 200, "{link}: {}", String::from_utf8_lossy(&body));
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(ct.contains("spreadsheetml"), "{link}: {ct}");
        let tables = tpsync_sheets::read_tables(&body, tpsync_sheets::SheetFormat::Xlsx).unwrap();
        assert!(
            !tables.is_empty() && !tables[0].headers.is_empty(),
            "{link}"
        );
    }
    let gaps_page = http_get(&url, "/ui/gaps", Some(&session));
    assert!(
        gaps_page.body.contains("/ui/exports/gaps.xlsx"),
        "{}",
        gaps_page.body
    );
    let other = county::school(2);
    let (status, _, body) = http_bytes(
        &url,
        &format!("/ui/exports/school.xlsx?school={}", other.as_str()),
        Some(&session),
        None,
    );
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("无权查看"), "the error page: {body}");
    let (status, _, _) = http_bytes(
        &url,
        &format!("/ui/schools/{code}/ledgers/books.xlsx"),
        None,
        None,
    );
    assert_eq!(status, 303, "no session, no file");

    // A review form posted from another site is refused, nothing recorded.
    let a = http_form(
        &url,
        &format!("/ui/schools/{code}/review"),
        Some(&session),
        Some("http://evil.example"),
        "section=profile&action=approve",
    );
    assert_eq!(a.status, 403, "{}", a.body);
    // A return without a comment is refused with the reason, in Chinese.
    let origin = url.clone();
    let teacher_submit = post_json(
        &url,
        &fx.teachers[0].access_token,
        &format!("/v1/schools/{code}/review"),
        json!({"section": "profile", "action": "submit"}),
    );
    assert_eq!(teacher_submit.0, 200, "{}", teacher_submit.1);
    let a = http_form(
        &url,
        &format!("/ui/schools/{code}/review"),
        Some(&session),
        Some(&origin),
        "section=profile&action=return&comment=+",
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("请写明意见"), "{}", a.body);
    // With a comment it is done, and the page says so.
    let a = http_form(
        &url,
        &format!("/ui/schools/{code}/review"),
        Some(&session),
        Some(&origin),
        "section=profile&action=return&comment=%E8%AF%B7%E9%99%84%E6%B5%8B%E9%87%8F%E5%9B%BE",
    );
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(
        a.location,
        Some(format!("/ui/schools/{code}?done=return.profile#review"))
    );
    let (_, v) = get_json(
        &url,
        &fx.townships[0].access_token,
        &format!("/v1/reports/schools/{code}"),
    );
    assert_eq!(v["review"][0]["status"], "returned");
    assert_eq!(v["review"][0]["return_comment"], "请附测量图");

    // An access token that no longer verifies is replaced through the
    // refresh cookie, on the same request.
    let stale = format!("tpsync_access=expired.or.forged; {refresh}; {device}");
    let a = http_get(&url, "/ui/gaps", Some(&stale));
    assert_eq!(a.status, 200, "{}", a.body);
    let new_access = cookie_pair(&a.set_cookies, "tpsync_access").expect("a new access cookie");
    let new_refresh = cookie_pair(&a.set_cookies, "tpsync_refresh").expect("a new refresh cookie");
    assert_ne!(new_refresh, refresh);
    assert!(a.body.contains("缺漏清单"));
    let a = http_get(
        &url,
        "/ui/freshness",
        Some(&format!("{new_access}; {new_refresh}")),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.set_cookies.is_empty(),
        "a valid session sets nothing: {:?}",
        a.set_cookies
    );
    assert!(
        a.body.contains("从未同步") || a.body.contains("phone-0-a"),
        "{}",
        a.body
    );

    // A township user's filter for another township is refused.
    let a = http_get(
        &url,
        &format!("/ui/gaps?township={}", county::TOWNSHIPS[1].0),
        Some(&format!("{new_access}; {new_refresh}")),
    );
    assert_eq!(a.status, 403, "{}", a.body);

    // Signing out ends the refresh token on the server too.
    let a = http_form(
        &url,
        "/ui/logout",
        Some(&format!("{new_access}; {new_refresh}")),
        Some(&origin),
        "",
    );
    assert_eq!((a.status, a.location.as_deref()), (303, Some("/ui/login")));
    let a = http_get(
        &url,
        "/ui/gaps",
        Some(&format!("tpsync_access=x; {new_refresh}")),
    );
    assert_eq!(
        a.status, 303,
        "the refresh token still worked after signing out"
    );

    // A wrong password: the form again with the reason, no cookie.
    let a = http_form(
        &url,
        "/ui/login",
        None,
        None,
        &format!(
            "username={}&password=wrong-password&next=%2Fui%2F",
            enc(COUNTY_USER)
        ),
    );
    assert_eq!(a.status, 401);
    assert!(a.set_cookies.is_empty(), "{:?}", a.set_cookies);
    assert!(a.body.contains("用户名或密码不对"), "{}", a.body);
    server.stop();
}

/// A valid 1×1 grey baseline JPEG (one 8×8 block, every coefficient zero,
/// Huffman tables of one code each), with `comment` in a COM segment so
/// that each call can make a different file.
fn tiny_jpeg(comment: &str) -> Vec<u8> {
    fn segment(out: &mut Vec<u8>, marker: u8, body: &[u8]) {
        out.extend([0xFF, marker]);
        out.extend(u16::try_from(body.len() + 2).unwrap().to_be_bytes());
        out.extend(body);
    }
    let mut j = vec![0xFF, 0xD8];
    if !comment.is_empty() {
        segment(&mut j, 0xFE, comment.as_bytes());
    }
    segment(&mut j, 0xDB, &[[0u8].as_slice(), &[1; 64]].concat());
    segment(&mut j, 0xC0, &[8, 0, 1, 0, 1, 1, 1, 0x11, 0]);
    for class in [0x00, 0x10] {
        let mut dht = vec![class, 1];
        dht.extend([0; 15]);
        dht.push(0); // DC: difference 0; AC: end of block.
        segment(&mut j, 0xC4, &dht);
    }
    segment(&mut j, 0xDA, &[1, 1, 0, 0, 0x3F, 0]);
    // Two one-bit codes "0", padded with ones.
    j.extend([0x3F, 0xFF, 0xD9]);
    j
}

/// A GET with cookies, the body as bytes.
fn http_bytes(
    url: &str,
    path: &str,
    cookie: Option<&str>,
    range: Option<&str>,
) -> (u16, ureq::http::HeaderMap, Vec<u8>) {
    let mut req = agent().get(format!("{url}{path}"));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let mut r = req.call().expect("HTTP request");
    let body = r.body_mut().read_to_vec().expect("the body");
    (r.status().as_u16(), r.headers().clone(), body)
}

#[test]
fn a_schools_attachments_show_thumbnails_and_open_only_for_who_may_see_them() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path());
    let url = server.url.clone();
    let fx = County::setup(&server);
    let school = county::school(0);
    let code = school.as_str();

    // The teacher photographs an equipment item: a photo sent with its
    // thumbnail, one not sent yet, and a wrong one removed.
    let mut phone = Phone::new(fx.teachers[0].clone());
    let item = phone.add_equipment(&school, 1);
    let (sent, sent_preview) = (tiny_jpeg("IMG_0001 原图"), tiny_jpeg(""));
    let (unsent, unsent_preview) = (tiny_jpeg("IMG_0002 原图"), tiny_jpeg("IMG_0002"));
    let wrong = tiny_jpeg("IMG_0003");
    let hash = |b: &[u8]| BlobHash::of(b);
    let record =
        |file: &[u8], preview: &[u8], name: &str, caption: &str, removed: bool| Attachment {
            target_kind: AttachedTo::EquipmentItem,
            target: item,
            sha256: hash(file).to_hex(),
            size: file.len() as u64,
            media_type: "image/jpeg".into(),
            file_name: Some(name.into()),
            caption: Some(caption.into()),
            preview_sha256: Some(hash(preview).to_hex()),
            preview_size: Some(preview.len() as u64),
            taken_on: Some("2026-11-20".into()),
            status: if removed {
                AttachmentStatus::Removed
            } else {
                AttachmentStatus::Active
            },
            status_reason: removed.then(|| "拍错了，是隔壁教室的".into()),
        };
    let ctx = phone.ctx();
    phone
        .replica
        .edit(&doc(&school, DocKind::Attachments), |d| {
            d.insert(
                &ctx,
                RecordId::random(),
                &record(&sent, &sent_preview, "IMG_0001.jpg", "显微镜铭牌", false),
            )?;
            d.insert(
                &ctx,
                RecordId::random(),
                &record(
                    &unsent,
                    &unsent_preview,
                    "IMG_0002.jpg",
                    "显微镜全貌",
                    false,
                ),
            )?;
            d.insert(
                &ctx,
                RecordId::random(),
                &record(&wrong, &wrong, "IMG_0003.jpg", "错拍", true),
            )
        })
        .unwrap();
    phone.sync_all(&fx.client).unwrap();
    let teacher = &fx.teachers[0].access_token;
    for bytes in [&sent, &sent_preview] {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), bytes).unwrap();
        let done = fx
            .client
            .upload_file(teacher, code, &hash(bytes), f.path(), 5, &mut |_| {})
            .expect("upload");
        assert!(done.complete, "{done:?}");
    }
    eventually(
        &url,
        &fx.county.access_token,
        &format!("/v1/reports/schools/{code}"),
        |r| r["equipment_items"] == 1,
    );
    let prepared = started.elapsed();

    // The county user signs in on the school's page.
    let browser = Browser::launch();
    let page = browser.open(&format!("{url}/ui/schools/{code}"));
    sign_in(&page, COUNTY_USER, PASSWORD);
    assert_eq!(page.url(), format!("{url}/ui/schools/{code}"));
    let figs = figures(&page);
    assert_eq!(number(&figs, "attachments-count"), Some(2.0));
    assert_eq!(number(&figs, "attachments-missing"), Some(1.0));
    assert_eq!(number(&figs, "attachments-removed"), Some(1.0));
    assert_eq!(number(&figs, "attachments-equipment_item"), Some(2.0));
    let sent_li = format!("[data-testid=attachment-{}]", &hash(&sent).to_hex()[..12]);
    let unsent_li = format!("[data-testid=attachment-{}]", &hash(&unsent).to_hex()[..12]);
    // Both under what they belong to, with name, caption, size and date.
    assert!(page
        .text("[data-testid=attachments-equipment_item] h3")
        .starts_with("仪器设备"));
    for (li, name, caption) in [
        (&sent_li, "IMG_0001.jpg", "显微镜铭牌"),
        (&unsent_li, "IMG_0002.jpg", "显微镜全貌"),
    ] {
        let text = page.text(&format!("[data-testid=attachments-equipment_item] {li}"));
        for shown in [name, caption, "KB", "2026-11-20"] {
            assert!(text.contains(shown), "{shown} not in {text}");
        }
    }
    assert!(
        page.text(&unsent_li).contains("尚未上传"),
        "{}",
        page.text(&unsent_li)
    );
    assert!(
        !page.exists(&format!("{unsent_li} img")) && !page.exists(&format!("{unsent_li} a")),
        "nothing to show or open for the photo not sent yet"
    );
    // The removed photo's reason, inside the closed <details>.
    let removed = page
        .eval("document.querySelector('[data-testid=attachments-removed-list] li').textContent");
    assert!(
        removed
            .as_str()
            .is_some_and(|t| t.contains("拍错了，是隔壁教室的")),
        "{removed}"
    );
    // The thumbnail loads under the page's Content-Security-Policy.
    let img = format!("{sent_li} img");
    assert_eq!(
        page.attr(&img, "src"),
        Some(format!(
            "/ui/schools/{code}/blobs/{}",
            hash(&sent_preview).to_hex()
        ))
    );
    assert_eq!(page.attr(&img, "alt").as_deref(), Some("显微镜铭牌"));
    assert_eq!(page.attr(&img, "loading").as_deref(), Some("lazy"));
    page.wait_until(&format!(
        "(() => {{ const i = document.querySelector({img:?}); i.scrollIntoView(); \
         return i.complete && i.naturalWidth > 0; }})()"
    ));
    assert!(page
        .eval(&format!(
            "document.querySelector({img:?}).getBoundingClientRect().width"
        ))
        .as_f64()
        .is_some_and(|w| w > 0.0 && w <= 96.0));
    keep_screenshot(&page, "school-attachments");
    let cookie = format!(
        "tpsync_access={}",
        page.cookie("tpsync_access").expect("signed in")
    );
    let (_, headers, _) = http_bytes(&url, &format!("/ui/schools/{code}"), Some(&cookie), None);
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("img-src 'self';"),
        "{csp}"
    );

    // "查看原图" is the exact bytes, as a photo, not a page.
    let link = format!("{sent_li} a");
    assert_eq!(page.text(&link), "查看原图");
    let href = page.attr(&link, "href").unwrap();
    assert_eq!(
        href,
        format!("/ui/schools/{code}/blobs/{}", hash(&sent).to_hex())
    );
    let (status, headers, body) = http_bytes(&url, &href, Some(&cookie), None);
    assert_eq!(status, 200);
    assert!(body == sent, "the photo's bytes");
    assert_eq!(headers["content-type"], "image/jpeg");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("sandbox"));
    let (status, _, body) = http_bytes(&url, &href, Some(&cookie), Some("bytes=10-"));
    assert_eq!(status, 206);
    assert!(body == sent[10..], "a range is the rest of the photo");
    let (status, headers, _) = http_bytes(&url, &href, None, None);
    assert_eq!(status, 303, "no session, no photo");
    assert!(headers["location"]
        .to_str()
        .unwrap()
        .starts_with("/ui/login?next="));
    let (status, _, body) = http_bytes(
        &url,
        &format!("/ui/schools/{code}/blobs/{}", hash(&unsent).to_hex()),
        Some(&cookie),
        None,
    );
    assert_eq!(status, 404, "not sent yet");
    assert!(String::from_utf8_lossy(&body).contains("data-status=\"404\""));
    page.click(&link);
    assert_eq!(page.url(), format!("{url}{href}"));
    assert_eq!(page.eval("document.contentType"), "image/jpeg");
    assert_eq!(page.eval("document.images[0].naturalWidth"), 1);

    // A teacher of another school: the refusal page, not the photo.
    page.goto(&format!("{url}/ui/logout"));
    sign_in(&page, &county::teacher_name(2), PASSWORD);
    page.goto(&format!("{url}{href}"));
    assert_eq!(
        page.attr("[data-testid=error]", "data-status").as_deref(),
        Some("403")
    );
    assert!(page.text("[data-testid=error]").contains("无权查看"));

    drop(page);
    drop(browser);
    server.stop();
    eprintln!(
        "dashboard_browser attachments: data ready in {prepared:.1?}, whole test {:.1?}",
        started.elapsed()
    );
}
