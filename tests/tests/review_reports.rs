//! The township's and the county's week, end to end against the real
//! `tpsync serve`: a teacher's records reach the county report through the
//! sync path; a section is submitted (refused while its checks fail), returned
//! with a comment, submitted again and approved (the approval freezes the
//! document's heads, and a later edit shows against that version); the
//! township submits the school as a whole, the county accepts; only the level
//! above undoes an approval; and a review step forged through sync (a
//! teacher's phone recording an approval) is refused with nothing applied.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sync_core::indicators::reference_template;
use sync_core::records::{
    ArchiveBox, ArchiveItem, ArchiveItemStatus, BoxStatus, CatalogueEntry, ChecklistRow,
    ChecklistRowStatus, EntryStatus, EquipmentItem, EquipmentStatus, ImprovementPlan,
    IndicatorTemplate, PlanStatus, Retention, ReviewAction, ReviewEvent, SchoolProfile, SchoolType,
    Section, StocktakeLine, StocktakeResult, StocktakeSession, StocktakeStatus, TemplateSettings,
    ValueSource,
};
use sync_core::workload::{sample_book, sample_equipment};
use sync_core::{DocId, DocKind, RecordId, SchoolId};
use tpsync_tests::county::{self, County, COUNTY_USER};
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

fn school_row<'a>(report: &'a Value, code: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == code)
        .unwrap_or_else(|| panic!("no row for {code} in {report:#}"))
}

fn section_status(report: &Value, section: &str) -> String {
    report["review"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["section"] == section)
        .unwrap()["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn doc(school: &SchoolId, kind: DocKind) -> DocId {
    DocId::school(school, kind).unwrap()
}

/// The county writes the reference thresholds, a two-item archive
/// catalogue and the due date, as the bureau does once.
fn seed_template(fx: &County) -> Vec<RecordId> {
    let mut phone = Phone::new(fx.login(COUNTY_USER, "county-seed"));
    let (indicators, mut settings) = reference_template();
    settings.review_due = Some("2099-12-31".into());
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

/// Two stocktake lines on the school's equipment (a shortage of a listed
/// item, an unlisted find) and a plan on its R6 row.
fn record_stocktake_and_plan(phone: &mut Phone, school: &SchoolId) {
    let ctx = phone.ctx();
    phone
        .replica
        .edit(&doc(school, DocKind::Equipment), |d| {
            let (item, listed) = d.list::<EquipmentItem>()?.remove(0);
            let session = RecordId::random();
            d.insert(
                &ctx,
                session,
                &StocktakeSession {
                    title: "2026年秋季盘点".into(),
                    room: None,
                    started_on: "2026-10-08".into(),
                    status: StocktakeStatus::Open,
                    closed_on: None,
                },
            )?;
            let line = |item: Option<RecordId>,
                        description: Option<&str>,
                        recorded: u32,
                        counted: u32| StocktakeLine {
                session,
                item,
                description: description.map(String::from),
                recorded_qty: recorded,
                counted_qty: counted,
                result: StocktakeResult::classify(recorded, counted, false),
                counted_by_device: ctx.device.to_string(),
                note: None,
            };
            d.insert(
                &ctx,
                RecordId::random(),
                &line(Some(item), None, listed.quantity, 0),
            )?;
            d.insert(&ctx, RecordId::random(), &line(None, Some("地球仪"), 0, 1))
                .map(|_| ())
        })
        .unwrap();
    phone
        .replica
        .edit(&doc(school, DocKind::Checklist), |d| {
            let (row, _) = d
                .list::<ChecklistRow>()?
                .into_iter()
                .find(|(_, r)| r.indicator_code == "R6")
                .expect("an R6 row");
            d.insert(
                &ctx,
                RecordId::random(),
                &ImprovementPlan {
                    row,
                    action: "申请县级配备资金".into(),
                    due_on: Some("2027-06-30".into()),
                    responsible: Some("王老师".into()),
                    status: PlanStatus::Planned,
                    status_reason: None,
                },
            )
            .map(|_| ())
        })
        .unwrap();
}

/// A 完全小学 of 200 students whose R6 (equipment value per student) falls
/// short: 10 items × 1,000 元 in use = 50 元 per student against 2,000.
fn record_school(phone: &mut Phone, school: &SchoolId, catalogue: &[RecordId]) {
    let ctx = phone.ctx();
    phone
        .replica
        .edit(&doc(school, DocKind::Profile), |d| {
            d.update_singleton::<SchoolProfile>(&ctx, |p| {
                p.name = Some("青山镇中心小学".into());
                p.school_type = Some(SchoolType::Primary);
                p.students_grade_1 = Some(40);
                p.students_grade_2 = Some(40);
                p.students_grade_3 = Some(30);
                p.students_grade_4 = Some(30);
                p.students_grade_5 = Some(30);
                p.students_grade_6 = Some(30);
                p.teachers_total = Some(12);
                p.teachers_qualified = Some(10);
                p.teachers_key = Some(2);
                p.teachers_pe_arts = Some(2);
                p.teaching_area_m2 = Some(1000.0);
                p.sports_area_m2 = Some(1600.0);
                p.multimedia_classrooms = Some(5);
            })
        })
        .unwrap();
    phone
        .replica
        .edit(&doc(school, DocKind::Equipment), |d| {
            for n in 0..10 {
                let mut item: EquipmentItem = sample_equipment(n);
                item.quantity = 1;
                item.unit_price_fen = 100_000;
                item.status = EquipmentStatus::InUse;
                d.insert(&ctx, RecordId::random(), &item)?;
            }
            Ok(())
        })
        .unwrap();
    phone
        .replica
        .edit(&doc(school, DocKind::Books), |d| {
            for n in 0..30 {
                d.insert(&ctx, RecordId::random(), &sample_book(n))?;
            }
            Ok(())
        })
        .unwrap();
    let rows: Vec<(String, RecordId)> = (1..=7)
        .map(|i| format!("R{i}"))
        .chain(["BOOKS".to_owned()])
        .map(|c| (c, RecordId::random()))
        .collect();
    phone
        .replica
        .edit(&doc(school, DocKind::Checklist), |d| {
            for (code, id) in &rows {
                d.insert(
                    &ctx,
                    *id,
                    &ChecklistRow {
                        indicator_code: code.clone(),
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
    // Only the first catalogue item is filed; the second is missing.
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
}

#[test]
fn review_workflow_and_reports_through_the_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path());
    let fx = County::setup(&server);
    let url = server.url.clone();
    let catalogue = seed_template(&fx);
    let school = county::school(0);
    let code = school.as_str().to_owned();
    let teacher = &fx.teachers[0].access_token;
    let township = &fx.townships[0].access_token;
    let other_township = &fx.townships[1].access_token;
    let county_t = &fx.county.access_token;

    // The teacher records offline and syncs; the county report follows.
    let mut phone = Phone::new(fx.teachers[0].clone());
    record_school(&mut phone, &school, &catalogue);
    phone.sync_all(&fx.client).unwrap();
    let report = eventually(&url, county_t, "/v1/reports/county", |r| {
        school_row(r, &code)["students"] == 200
    });
    assert_eq!(report["schools"], 4);
    let primary = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "primary")
        .expect("a primary stage rollup");
    let r6 = primary["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["code"] == "R6")
        .unwrap();
    assert_eq!(r6["threshold"], 2000.0);
    assert_eq!(r6["min"], 50.0, "10 × 1,000 元 ÷ 200 students: {r6:#}");

    // The school's page: R6 below threshold with no plan, archive item A2 missing.
    let (s, page) = get_json(&url, teacher, &format!("/v1/reports/schools/{code}"));
    assert_eq!(s, 200, "{page}");
    let below: Vec<&str> = page["gaps"]["below_threshold"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["code"].as_str().unwrap())
        .collect();
    assert!(below.contains(&"R6"), "{below:?}");
    let archive: Vec<&str> = page["gaps"]["archive"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["code"].as_str().unwrap())
        .collect();
    assert_eq!(archive, ["A2"]);

    // Access: another township and a teacher of another school see nothing;
    // a teacher gets no area report.
    assert_eq!(
        get_json(&url, other_township, &format!("/v1/reports/schools/{code}")).0,
        403
    );
    assert_eq!(
        get_json(
            &url,
            &fx.teachers[2].access_token,
            &format!("/v1/reports/schools/{code}")
        )
        .0,
        403
    );
    assert_eq!(get_json(&url, teacher, "/v1/reports/county").0, 403);
    assert_eq!(get_json(&url, township, "/v1/reports/county").0, 403);
    let (s, tr) = get_json(&url, township, "/v1/reports/townships/430123101");
    assert_eq!(s, 200);
    assert_eq!(tr["schools"], 2);
    assert_eq!(
        get_json(&url, township, "/v1/reports/townships/430123102").0,
        403
    );

    let review = |token: &str, section: &str, action: &str, comment: Option<&str>| {
        post_json(
            &url,
            token,
            &format!("/v1/schools/{code}/review"),
            json!({"section": section, "action": action, "comment": comment}),
        )
    };

    // The checklist cannot be submitted while R6 has no plan; the archive
    // not while A2 is missing. Nothing is recorded by a refusal.
    let (s, v) = review(teacher, "checklist", "submit", None);
    assert_eq!(s, 409, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("R6"), "{v}");
    let (s, v) = review(teacher, "archive", "submit", None);
    assert_eq!(s, 409, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("A2"), "{v}");
    // Only the township approves; only the teacher submits.
    assert_eq!(review(teacher, "profile", "approve", None).0, 403);
    assert_eq!(review(township, "profile", "submit", None).0, 403);
    assert_eq!(review(county_t, "profile", "approve", None).0, 403);
    assert_eq!(review(other_township, "profile", "approve", None).0, 403);
    // Approving what was not submitted is refused.
    assert_eq!(review(township, "profile", "approve", None).0, 409);

    // Submit → return with a comment (a comment is required) → submit → approve.
    let (s, v) = review(teacher, "profile", "submit", None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"]["status"], "submitted");
    assert_eq!(review(township, "profile", "return", None).0, 400);
    let (s, v) = review(
        township,
        "profile",
        "return",
        Some("体育场馆面积请附测量图"),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"]["status"], "returned");
    assert_eq!(v["state"]["return_comment"], "体育场馆面积请附测量图");
    assert_eq!(review(teacher, "profile", "submit", None).0, 200);
    let (s, v) = review(township, "profile", "approve", Some("同意"));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"]["status"], "approved");
    assert!(!v["state"]["approved_heads"].as_array().unwrap().is_empty());
    assert_eq!(v["state"]["edited_since_approval"], false);

    // The teacher's phone learns the review by sync; an edit after the
    // approval shows against the approved version.
    phone.sync_all(&fx.client).unwrap();
    let ctx = phone.ctx();
    phone
        .replica
        .edit(&doc(&school, DocKind::Profile), |d| {
            d.update_singleton::<SchoolProfile>(&ctx, |p| p.sports_area_m2 = Some(1800.0))
        })
        .unwrap();
    phone.sync_all(&fx.client).unwrap();
    eventually(
        &url,
        township,
        &format!("/v1/reports/schools/{code}"),
        |r| r["review"][0]["edited_since_approval"] == true,
    );
    let (s, diff) = get_json(
        &url,
        township,
        &format!("/v1/schools/{code}/sections/profile/changes"),
    );
    assert_eq!(s, 200, "{diff}");
    let fields = &diff["changes"][0]["fields"];
    assert_eq!(fields[0]["field"], "sports_area_m2", "{diff:#}");
    assert_eq!(fields[0]["approved"], 1600.0);
    assert_eq!(fields[0]["now"], 1800.0);

    // A forged approval through sync: the teacher's phone records an
    // "approve" in the review document. Refused, nothing applied.
    let review_doc = doc(&school, DocKind::Review);
    let before = phone.heads(&review_doc);
    let ctx = phone.ctx();
    phone
        .replica
        .edit(&review_doc, |d| {
            d.insert(
                &ctx,
                RecordId::random(),
                &ReviewEvent {
                    section: Section::Books,
                    action: ReviewAction::Approve,
                    comment: None,
                    frozen_heads: None,
                    by_user: fx.teachers[0].user.username.clone(),
                    at: ctx.now_ms,
                },
            )
            .map(|_| ())
        })
        .unwrap();
    let err = phone.sync(&fx.client, &[review_doc.clone()]).unwrap_err();
    assert!(err.to_string().contains("only the township"), "{err}");
    let mut county_phone = Phone::new(fx.login(COUNTY_USER, "county-check"));
    county_phone
        .sync(&fx.client, &[review_doc.clone()])
        .unwrap();
    assert_eq!(
        county_phone.heads(&review_doc),
        before,
        "the forged step did not land"
    );
    let (_, page) = get_json(&url, township, &format!("/v1/reports/schools/{code}"));
    assert_eq!(section_status(&page, "books"), "draft");
    drop(phone);

    // The township cannot submit the school to the county before every
    // section is approved; the county cannot accept what was not submitted.
    let (s, v) = post_json(
        &url,
        township,
        "/v1/townships/430123101/review",
        json!({"action": "submit"}),
    );
    assert_eq!(s, 409, "{v}");
    assert!(v["detail"].as_str().unwrap().contains(&code), "{v}");
    assert_eq!(review(county_t, "whole", "accept", None).0, 409);

    // Complete the checklist (a plan for each shortfall) and the archive,
    // then every section goes through.
    let mut phone = Phone::new(fx.login(&county::teacher_name(0), "phone-0-b"));
    phone.sync_all(&fx.client).unwrap();
    let ctx = phone.ctx();
    let rows: Vec<(RecordId, ChecklistRow)> = phone
        .replica
        .doc(&doc(&school, DocKind::Checklist))
        .unwrap()
        .list()
        .unwrap();
    let (_, page) = get_json(&url, teacher, &format!("/v1/reports/schools/{code}"));
    let short: Vec<String> = page["gaps"]["below_threshold"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["code"].as_str().unwrap().to_owned())
        .collect();
    phone
        .replica
        .edit(&doc(&school, DocKind::Checklist), |d| {
            for (id, row) in &rows {
                if short.contains(&row.indicator_code) {
                    d.insert(
                        &ctx,
                        RecordId::random(),
                        &ImprovementPlan {
                            row: *id,
                            action: "申请县级配备资金".into(),
                            due_on: Some("2027-06-30".into()),
                            responsible: Some("李老师".into()),
                            status: PlanStatus::Planned,
                            status_reason: None,
                        },
                    )?;
                }
            }
            Ok(())
        })
        .unwrap();
    let archive_box = phone
        .replica
        .doc(&doc(&school, DocKind::Archive))
        .unwrap()
        .list::<ArchiveBox>()
        .unwrap()[0]
        .0;
    phone
        .replica
        .edit(&doc(&school, DocKind::Archive), |d| {
            d.insert(
                &ctx,
                RecordId::random(),
                &ArchiveItem {
                    catalogue_entry: catalogue[1],
                    status: ArchiveItemStatus::Filed,
                    box_id: Some(archive_box),
                    folder_no: Some("2".into()),
                    title: Some("教学仪器设备配备清单".into()),
                    document_no: None,
                    doc_date: None,
                    pages: Some(3),
                    note: None,
                    status_reason: None,
                },
            )
            .map(|_| ())
        })
        .unwrap();
    phone.sync_all(&fx.client).unwrap();
    eventually(&url, teacher, &format!("/v1/reports/schools/{code}"), |r| {
        r["gaps"]["archive"].as_array().unwrap().is_empty()
            && r["submission_problems"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p[1].as_array().unwrap().is_empty())
    });
    for section in ["equipment", "books", "archive", "checklist"] {
        let (s, v) = review(teacher, section, "submit", None);
        assert_eq!(s, 200, "submit {section}: {v}");
        let (s, v) = review(township, section, "approve", None);
        assert_eq!(s, 200, "approve {section}: {v}");
    }

    // The township submits its aggregate: school 0 goes; school 1 (nothing
    // approved) blocks an all-or-nothing submission of the whole township,
    // so the clerk names the ready school.
    let (s, v) = post_json(
        &url,
        township,
        "/v1/townships/430123101/review",
        json!({"action": "submit"}),
    );
    assert_eq!(s, 409, "{v}");
    let (s, v) = post_json(
        &url,
        township,
        "/v1/townships/430123101/review",
        json!({"action": "submit", "schools": [code]}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["done"][0]["state"]["status"], "submitted");
    // While the school is with the county the township cannot undo an approval.
    assert_eq!(review(township, "books", "revoke", None).0, 409);
    let (s, v) = review(county_t, "whole", "accept", Some("验收通过"));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"]["status"], "accepted");
    // Completeness by level.
    let report = eventually(&url, county_t, "/v1/reports/county", |r| {
        r["wholes"]["approved"] == 1
    });
    assert_eq!(report["sections"]["expected"], 20);
    assert_eq!(report["sections"]["submitted"], 5);
    assert_eq!(report["sections"]["approved"], 5);
    assert_eq!(report["sections"]["on_time"], 5);
    assert_eq!(
        report["sections"]["edited_since_approval"], 1,
        "the profile edit"
    );
    assert_eq!(report["wholes"]["expected"], 4);
    assert_eq!(report["wholes"]["submitted"], 1);
    let line = report["townships"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["code"] == "430123101")
        .unwrap();
    assert_eq!(line["accepted"], 1);
    assert_eq!(school_row(&report, &code)["whole"], "accepted");
    // Only the county undoes the acceptance; then the township may again.
    assert_eq!(review(township, "whole", "revoke", None).0, 403);
    let (s, v) = review(county_t, "whole", "revoke", Some("复核"));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"]["status"], "submitted");

    // Gaps and freshness: the device that never synced after signing in is listed.
    let (s, gaps) = get_json(&url, township, "/v1/reports/gaps?stale_days=7");
    assert_eq!(s, 200, "{gaps}");
    let stale: Vec<&str> = gaps["stale_devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device"].as_str().unwrap())
        .collect();
    assert!(
        stale.contains(&"phone-1-a"),
        "school 1's phone never synced: {stale:?}"
    );
    assert!(
        !stale.contains(&"phone-0-b"),
        "it synced just now: {stale:?}"
    );
    assert!(
        !stale
            .iter()
            .any(|d| d.starts_with("phone-2") || d.starts_with("phone-3")),
        "other township: {stale:?}"
    );
    server.stop();
}

/// Excel: a ledger and a report exported and read back; a ledger import
/// previewed (nothing written), then imported: the good rows are created,
/// the bad rows reported with line and column and nothing made of them.
#[test]
fn excel_exports_read_back_and_an_import_creates_only_good_rows() {
    use tpsync_sheets::{read_tables, SheetFormat};
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path());
    let fx = County::setup(&server);
    let url = server.url.clone();
    let catalogue = seed_template(&fx);
    let school = county::school(0);
    let code = school.as_str().to_owned();
    let teacher = &fx.teachers[0].access_token;
    let township = &fx.townships[0].access_token;
    let county_t = &fx.county.access_token;
    let mut phone = Phone::new(fx.teachers[0].clone());
    record_school(&mut phone, &school, &catalogue);
    record_stocktake_and_plan(&mut phone, &school);
    phone.sync_all(&fx.client).unwrap();
    eventually(&url, county_t, "/v1/reports/county", |r| {
        school_row(r, &code)["students"] == 200
    });
    let auth = |t: &str| format!("Bearer {t}");

    // The equipment ledger as .xlsx, read back.
    let r = get(
        &url,
        &format!("/v1/schools/{code}/ledgers/equipment.xlsx"),
        &[("authorization", &auth(teacher))],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let tables = read_tables(&r.body, SheetFormat::Xlsx).unwrap();
    assert_eq!(tables[0].headers[0], "资产编号");
    assert_eq!(tables[0].rows.len(), 10);
    let price = tables[0].column("单价(元)").expect("单价(元) column");
    assert_eq!(
        tables[0].rows[0][price].as_f64(),
        Some(1000.0),
        "fen shown as yuan"
    );

    // The county report as .xlsx (schools, indicators and CV, townships) and CSV.
    let r = get(
        &url,
        "/v1/exports/report.xlsx",
        &[("authorization", &auth(county_t))],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let tables = read_tables(&r.body, SheetFormat::Xlsx).unwrap();
    let names: Vec<&str> = tables.iter().map(|t| t.sheet.as_str()).collect();
    assert_eq!(names, ["学校", "指标与差异系数", "乡镇"]);
    assert_eq!(tables[0].rows.len(), 4);
    let (_, report) = get_json(&url, county_t, "/v1/reports/county");
    let cv_col = tables[1].column("差异系数").unwrap();
    let code_col = tables[1].column("指标").unwrap();
    let r6 = tables[1]
        .rows
        .iter()
        .find(|row| row[code_col].as_str() == Some("R6"))
        .unwrap();
    let primary = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "primary")
        .unwrap();
    let json_cv = primary["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["code"] == "R6")
        .unwrap()["cv"]["cv"]
        .as_f64();
    assert_eq!(
        r6[cv_col].as_f64(),
        json_cv,
        "the workbook shows the API's CV"
    );
    let r = get(
        &url,
        "/v1/exports/report.csv",
        &[("authorization", &auth(county_t))],
    );
    assert_eq!(r.status, 200);
    assert!(
        r.body.starts_with(b"\xEF\xBB\xBF"),
        "CSV with a BOM for Excel"
    );
    // A teacher gets no county report.
    assert_eq!(
        get(
            &url,
            "/v1/exports/report.xlsx",
            &[("authorization", &auth(teacher))]
        )
        .status,
        403
    );

    // Every other register and report, with Chinese headers.
    let xlsx = |token: &str, path: &str| {
        let r = get(&url, path, &[("authorization", &auth(token))]);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        read_tables(&r.body, SheetFormat::Xlsx).unwrap()
    };
    let sheets = |tables: &[tpsync_sheets::Table]| -> Vec<String> {
        tables.iter().map(|t| t.sheet.clone()).collect()
    };
    let archive = xlsx(
        township,
        &format!("/v1/schools/{code}/ledgers/archive.xlsx"),
    );
    assert_eq!(sheets(&archive), ["档案目录", "档案盒"]);
    assert_eq!(archive[0].rows.len(), 1);
    assert_eq!(archive[0].cell(0, "目录编号").as_str(), Some("A1"));
    assert_eq!(
        archive[0].cell(0, "档案名称").as_str(),
        Some("学校章程"),
        "title from the county catalogue"
    );
    assert_eq!(archive[0].cell(0, "盒号").as_str(), Some("2026-001"));
    assert_eq!(archive[0].cell(0, "状态").as_str(), Some("已归档"));
    assert_eq!(archive[1].cell(0, "保管期限").as_str(), Some("30年"));
    let checklist = xlsx(
        county_t,
        &format!("/v1/schools/{code}/ledgers/checklist.xlsx"),
    );
    assert_eq!(sheets(&checklist), ["对指标", "整改计划"]);
    assert_eq!(checklist[0].rows.len(), 8, "R1–R7 and BOOKS");
    assert_eq!(
        checklist[1].cell(0, "指标").as_str(),
        Some("R6"),
        "the plan names its row's indicator"
    );
    assert_eq!(
        checklist[1].cell(0, "完成期限").as_str(),
        Some("2027-06-30")
    );
    let r = get(
        &url,
        &format!("/v1/schools/{code}/ledgers/checklist.csv?table=1"),
        &[("authorization", &auth(teacher))],
    );
    assert_eq!(r.status, 200);
    assert!(r.text().contains("申请县级配备资金"), "{}", r.text());
    let r = get(
        &url,
        &format!("/v1/schools/{code}/ledgers/checklist.csv?table=2"),
        &[("authorization", &auth(teacher))],
    );
    assert_eq!(r.status, 400, "there are two tables: {}", r.text());
    let stock = xlsx(
        teacher,
        &format!("/v1/schools/{code}/ledgers/stocktake.xlsx"),
    );
    assert_eq!(stock[0].rows.len(), 2);
    assert_eq!(
        stock[0].cell(0, "名称").as_str(),
        Some("地球仪"),
        "an unlisted find"
    );
    assert_eq!(stock[0].cell(0, "结果").as_str(), Some("盘盈"));
    assert_eq!(stock[0].cell(1, "结果").as_str(), Some("盘亏"));
    assert_eq!(stock[0].cell(1, "实盘数量").as_f64(), Some(0.0));
    let r = get(
        &url,
        &format!("/v1/schools/{code}/ledgers/pupils.xlsx"),
        &[("authorization", &auth(teacher))],
    );
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("stocktake"),
        "names what there is: {}",
        r.text()
    );

    let report = xlsx(teacher, &format!("/v1/exports/school.xlsx?school={code}"));
    assert_eq!(
        sheets(&report),
        ["结论", "指标", "审核", "未达标指标", "档案缺漏", "盘点差异"]
    );
    let (_, json) = get_json(&url, teacher, &format!("/v1/reports/schools/{code}"));
    let verdict = match json["evaluation"]["stages"][0]["verdict"]["verdict"].as_str() {
        Some("fail") => "未达标",
        Some("undetermined") => "无法判定",
        other => panic!("R6 falls short, so not {other:?}"),
    };
    assert_eq!(
        report[0].cell(0, "结论").as_str(),
        Some(verdict),
        "as the API says"
    );
    let ind = &report[1];
    let code_col = ind.column("指标").unwrap();
    let r6 = ind
        .rows
        .iter()
        .position(|r| r[code_col].as_str() == Some("R6"))
        .unwrap();
    assert_eq!(
        ind.rows[r6][ind.column("现值").unwrap()].as_f64(),
        Some(50.0)
    );
    assert_eq!(
        ind.rows[r6][ind.column("是否达标").unwrap()].as_str(),
        Some("否")
    );
    assert_eq!(
        ind.rows[r6][ind.column("整改措施").unwrap()].as_str(),
        Some("申请县级配备资金")
    );
    assert_eq!(
        report[2].rows.len(),
        6,
        "five sections and the school as a whole"
    );
    assert_eq!(
        report[4].cell(0, "档案名称").as_str(),
        Some("教学仪器设备配备清单"),
        "the missing item"
    );
    assert_eq!(report[5].rows.len(), 2, "both stocktake discrepancies");
    // Another township's school is not the teacher's, nor the township's.
    let other = county::school(2);
    for t in [teacher, township] {
        let r = get(
            &url,
            &format!("/v1/exports/school.xlsx?school={}", other.as_str()),
            &[("authorization", &auth(t))],
        );
        assert_eq!(r.status, 403, "{}", r.text());
    }
    let fresh = xlsx(township, "/v1/exports/freshness.xlsx");
    assert_eq!(sheets(&fresh), ["同步情况"]);
    let dev_col = fresh[0].column("设备").unwrap();
    let devices: Vec<&str> = fresh[0]
        .rows
        .iter()
        .filter_map(|r| r[dev_col].as_str())
        .collect();
    assert!(devices.contains(&phone.device()), "{devices:?}");
    assert_eq!(
        get(
            &url,
            "/v1/exports/freshness.xlsx",
            &[("authorization", &auth(teacher))]
        )
        .status,
        403,
        "devices are for the township and the county"
    );

    // Import: two good books, one with copies "十二", one without a title.
    let csv = "登记号,书名,作者,册数,定价\nB-9001,乡村少年,王明,2,18.50\nB-9002,山里的星星,,1,\nB-9003,坏行,李,十二,5\nB-9004,,李,1,5\n";
    let import = |token: &str, dry: bool| {
        post(
            &url,
            &format!("/v1/schools/{code}/ledgers/books/import?filename=books.csv&dry_run={dry}"),
            &[
                ("authorization", &auth(token)),
                ("content-type", "text/csv"),
            ],
            csv.as_bytes(),
        )
    };
    let titles = |v: &Value| v["books_titles"].as_u64().unwrap();
    let (_, before) = get_json(&url, teacher, &format!("/v1/reports/schools/{code}"));
    let r = import(teacher, true);
    assert_eq!(r.status, 200, "{}", r.text());
    let preview: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        preview["created"].as_array().unwrap().len(),
        2,
        "{preview:#}"
    );
    let errors = preview["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{preview:#}");
    assert_eq!(errors[0]["line"], 4);
    assert_eq!(errors[0]["column"], "册数");
    assert_eq!(errors[1]["line"], 5);
    std::thread::sleep(Duration::from_millis(300));
    let (_, after_preview) = get_json(&url, teacher, &format!("/v1/reports/schools/{code}"));
    assert_eq!(
        titles(&after_preview),
        titles(&before),
        "a preview writes nothing"
    );
    assert_eq!(
        import(county_t, false).status,
        403,
        "the county does not import"
    );
    let r = import(teacher, false);
    assert_eq!(r.status, 200, "{}", r.text());
    eventually(&url, teacher, &format!("/v1/reports/schools/{code}"), |v| {
        titles(v) == titles(&before) + 2
    });
    // The phone receives the imported books by sync; none of the bad rows.
    phone.sync_all(&fx.client).unwrap();
    let books: Vec<(RecordId, sync_core::records::Book)> = phone
        .replica
        .doc(&doc(&school, DocKind::Books))
        .unwrap()
        .list()
        .unwrap();
    let regs: Vec<&str> = books
        .iter()
        .map(|(_, b)| b.reg_no.as_str())
        .filter(|r| r.starts_with("B-900"))
        .collect();
    assert_eq!(regs.len(), 2, "{regs:?}");
    assert!(regs.contains(&"B-9001") && regs.contains(&"B-9002"));
    // Importing the same file again creates nothing new: the keys exist.
    let r = import(teacher, false);
    let again: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(again["created"].as_array().unwrap().len(), 0, "{again:#}");
    server.stop();
}
