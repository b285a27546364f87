//! Golden tests for `sync_core::indicators`, with every expected figure
//! worked out by hand.
//!
//! No expected value here comes from the code under test or from a copy of
//! its formulas. Each one is worked out in a comment next to its assertion, so
//! a reviewer can check it with a pencil. Most fixtures are picked so the
//! per-student values are round numbers (200 students and 9 qualified teachers
//! give R1 = 9 × 100 ÷ 200 = 4.5 per hundred).
//!
//! Where the formulas and figures come from (shared/domain/indicators.md):
//!
//! - R1–R7: R1, R2, R3 and R7 are a count × 100 ÷ students. R4 and R5 are m²
//!   ÷ students. R6 is 元 of equipment in use ÷ students. Thresholds are the
//!   reference ones (`reference_template()`):
//!   小学 R1 4.2, R2 1.0, R3 0.9, R4 4.5, R5 7.5, R6 2000, R7 2.3;
//!   初中 R1 5.3, R2 1.0, R3 0.9, R4 5.8, R5 10.2, R6 2500, R7 2.4.
//! - A stage passes when at least 6 of the 7 meet their threshold and the one
//!   that does not reaches at least 85% of it.
//! - 差异系数, weighted by enrollment: P = Σ P_i, X̄ = Σ P_i·x_i ÷ P,
//!   S = sqrt(Σ (P_i ÷ P)·(x_i − X̄)²), CV = S ÷ X̄. Schools with no students
//!   are left out. X̄ = 0 gives no CV.
//! - 九年一贯制: two stages, each with its own students. A school-wide figure
//!   is split with weights 小学 : 初中 = 1 : 1.1 per student (see
//!   `nine_year_school_*` for the shares worked out by hand).
//! - Teaching points: evaluate alone, fold into the parent, or leave out
//!   under N students (a county setting).
//! - 生均图书: books on the shelf or on loan ÷ students, against the
//!   template's value (reference: 25 册 for 小学, 35 册 for 初中). Weeded
//!   (剔旧) and lost (遗失) books are not counted.

use sync_core::indicators::{
    coefficient_of_variation, evaluate_school, reference_template, IndicatorResult,
    SchoolEvaluation, SchoolInput, StageEvaluation, TeachingPointTreatment, ValueOrigin, Verdict,
    BOOKS_CODE,
};
use sync_core::records::{
    Book, BookStatus, EquipmentItem, EquipmentStatus, IndicatorTemplate, SchoolProfile, SchoolType,
    Stage, TeachingPointPolicy, TemplateSettings,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `a` equals the hand-worked `b` to within floating-point noise (relative 1e-9).
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[track_caller]
fn assert_close(actual: Option<f64>, expected: f64) {
    let a = actual.unwrap_or_else(|| panic!("no value, expected {expected}"));
    assert!(close(a, expected), "got {a}, expected {expected}");
}

/// A hand-worked figure rounded to `decimals` places: |a − b| < ½·10^−decimals.
#[track_caller]
fn assert_to_decimals(actual: Option<f64>, expected: f64, decimals: i32) {
    let a = actual.unwrap_or_else(|| panic!("no value, expected {expected}"));
    assert!(
        (a - expected).abs() < 0.5 * 10f64.powi(-decimals),
        "got {a}, expected {expected} to {decimals} decimals"
    );
}

fn profile(school_type: SchoolType) -> SchoolProfile {
    SchoolProfile {
        school_code: Some("4301230101".into()),
        name: Some("石门乡中心小学".into()),
        school_type: Some(school_type),
        township: Some("石门乡".into()),
        parent_school: None,
        students_grade_1: None,
        students_grade_2: None,
        students_grade_3: None,
        students_grade_4: None,
        students_grade_5: None,
        students_grade_6: None,
        students_grade_7: None,
        students_grade_8: None,
        students_grade_9: None,
        classes: None,
        teachers_total: None,
        teachers_qualified: None,
        teachers_key: None,
        teachers_pe_arts: None,
        teaching_area_m2: None,
        sports_area_m2: None,
        multimedia_classrooms: None,
    }
}

fn equipment(quantity: u32, unit_price_yuan: i64, status: EquipmentStatus) -> EquipmentItem {
    EquipmentItem {
        asset_no: "YQ-00001".into(),
        name: "交互式多媒体一体机".into(),
        category_code: None,
        brand: None,
        model: None,
        spec: None,
        unit: Some("台".into()),
        quantity,
        unit_price_fen: unit_price_yuan * 100,
        funding_source: None,
        keeper: None,
        room: None,
        acquired_on: None,
        status,
        status_reason: None,
        status_date: None,
    }
}

fn books(copies: u32, status: BookStatus) -> Book {
    Book {
        reg_no: "TS000001".into(),
        isbn: None,
        title: "十万个为什么".into(),
        author: None,
        publisher: None,
        pub_year: None,
        clc_class: None,
        price_fen: None,
        copies,
        shelf: None,
        received_on: None,
        status,
        status_reason: None,
        status_date: None,
    }
}

/// One school's records and the reference template, owned so a test can
/// change one figure and evaluate again.
struct School {
    profile: SchoolProfile,
    equipment: Vec<EquipmentItem>,
    books: Vec<Book>,
    indicators: Vec<IndicatorTemplate>,
    settings: TemplateSettings,
}

impl School {
    fn new(profile: SchoolProfile) -> Self {
        let (indicators, settings) = reference_template();
        School {
            profile,
            equipment: vec![],
            books: vec![],
            indicators,
            settings,
        }
    }

    fn eval(&self) -> SchoolEvaluation {
        evaluate_school(&SchoolInput {
            profile: &self.profile,
            equipment: &self.equipment,
            books: &self.books,
            rows: &[],
            plans: &[],
            indicators: &self.indicators,
            settings: &self.settings,
        })
    }

    /// The only stage of a single-stage school.
    fn only_stage(&self) -> StageEvaluation {
        let mut e = self.eval();
        assert_eq!(e.stages.len(), 1, "{:?}", e.stages);
        e.stages.remove(0)
    }
}

fn ind<'a>(s: &'a StageEvaluation, code: &str) -> &'a IndicatorResult {
    s.indicators
        .iter()
        .find(|r| r.code == code)
        .unwrap_or_else(|| panic!("no {code} in {:?}", s.stage))
}

/// A 完全小学 of 200 students (40 + 40 + 30 + 30 + 30 + 30) that meets all
/// seven 小学 reference thresholds with round values:
///
/// | R | figure                              | value                    | threshold |
/// |---|-------------------------------------|--------------------------|-----------|
/// | 1 | 9 qualified teachers                | 9 × 100 ÷ 200 = 4.5      | 4.2       |
/// | 2 | 2 key teachers                      | 2 × 100 ÷ 200 = 1.0      | 1.0 (equal meets) |
/// | 3 | 2 PE/art teachers                   | 2 × 100 ÷ 200 = 1.0      | 0.9       |
/// | 4 | 1000 m² teaching rooms              | 1000 ÷ 200 = 5.0         | 4.5       |
/// | 5 | 1600 m² sports                      | 1600 ÷ 200 = 8.0         | 7.5       |
/// | 6 | 40 × 11,000 元 in use = 440,000 元  | 440,000 ÷ 200 = 2200     | 2000      |
/// | 7 | 5 multimedia rooms                  | 5 × 100 ÷ 200 = 2.5      | 2.3       |
///
/// The ledger also holds 1 scrapped item of 50,000 元 and 2 idle items of
/// 3,000 元. They are not in use, so they do not count toward R6. Counted,
/// they would make (440,000 + 50,000 + 6,000) ÷ 200 = 2480.
fn primary_200() -> School {
    let mut p = profile(SchoolType::Primary);
    p.students_grade_1 = Some(40);
    p.students_grade_2 = Some(40);
    p.students_grade_3 = Some(30);
    p.students_grade_4 = Some(30);
    p.students_grade_5 = Some(30);
    p.students_grade_6 = Some(30);
    p.teachers_qualified = Some(9);
    p.teachers_key = Some(2);
    p.teachers_pe_arts = Some(2);
    p.teaching_area_m2 = Some(1000.0);
    p.sports_area_m2 = Some(1600.0);
    p.multimedia_classrooms = Some(5);
    let mut s = School::new(p);
    s.equipment = vec![
        equipment(40, 11_000, EquipmentStatus::InUse),
        equipment(1, 50_000, EquipmentStatus::Scrapped),
        equipment(2, 3_000, EquipmentStatus::Idle),
    ];
    s.books = vec![books(5000, BookStatus::OnShelf)];
    s
}

// ---------------------------------------------------------------------------
// 1. The enrollment-weighted coefficient of variation (差异系数)
// ---------------------------------------------------------------------------

/// R4 (m² per student) across a county's five 小学 with students, plus one
/// school with none:
///
/// | school | P_i  | x_i  | P_i·x_i |
/// |--------|------|------|---------|
/// | A      | 400  | 5.0  | 2000    |
/// | B      | 200  | 8.0  | 1600    |
/// | C      | 100  | 2.0  |  200    |
/// | D      | 200  | 4.0  |  800    |
/// | E      | 100  | 10.0 | 1000    |
/// | F      | 0    | 99.0 | (left out) |
///
/// P  = 400 + 200 + 100 + 200 + 100 = 1000
/// X̄  = (2000 + 1600 + 200 + 800 + 1000) ÷ 1000 = 5600 ÷ 1000 = 5.6
///
/// | school | P_i/P | x_i − X̄ | (x_i − X̄)² | (P_i/P)(x_i − X̄)² |
/// |--------|-------|---------|------------|-------------------|
/// | A      | 0.4   | −0.6    |  0.36      | 0.144             |
/// | B      | 0.2   |  2.4    |  5.76      | 1.152             |
/// | C      | 0.1   | −3.6    | 12.96      | 1.296             |
/// | D      | 0.2   | −1.6    |  2.56      | 0.512             |
/// | E      | 0.1   |  4.4    | 19.36      | 1.936             |
///
/// S² = 0.144 + 1.152 + 1.296 + 0.512 + 1.936 = 5.04
/// S  = √5.04 = 2.2449944… (2.245² = 5.040025, so √5.04 ≈ 2.245 − 0.000025 ÷ 4.49
///      = 2.245 − 0.0000056 = 2.2449944)
/// CV = 2.2449944 ÷ 5.6 = 0.4008919 (5.6 × 0.4 = 2.24; 0.0049944 ÷ 5.6 = 0.0008919)
///
/// The same five values, unweighted:
///   mean = (5 + 8 + 2 + 4 + 10) ÷ 5 = 29 ÷ 5 = 5.8
///   deviations −0.8, 2.2, −3.8, −1.8, 4.2; squares 0.64 + 4.84 + 14.44 + 3.24
///   + 17.64 = 40.8
///   population SD = √(40.8 ÷ 5) = √8.16 = 2.8565714 → CV = 2.8565714 ÷ 5.8 = 0.4925123
///   sample SD     = √(40.8 ÷ 4) = √10.2 = 3.1937439 → CV = 3.1937439 ÷ 5.8 = 0.5506455
/// The sample form would put this county over the 小学 limit of 0.50. The
/// weighted figure (0.4009) is within it.
const COUNTY_R4: [(u32, f64); 6] = [
    (400, 5.0),
    (200, 8.0),
    (100, 2.0),
    (200, 4.0),
    (100, 10.0),
    (0, 99.0),
];

#[test]
fn weighted_cv_of_five_schools_is_0_4009_not_the_unweighted_0_4925_or_0_5506() {
    let cv = coefficient_of_variation(&COUNTY_R4);

    assert_eq!(cv.schools, 5);
    assert_eq!(cv.excluded_no_students, 1);
    assert_eq!(cv.excluded_invalid, 0);
    assert_eq!(cv.students, 1000);
    assert_close(cv.mean, 5.6);
    assert_close(cv.std_dev.map(|s| s * s), 5.04); // S² = 5.04
    assert_to_decimals(cv.std_dev, 2.244_994_4, 6);
    assert_to_decimals(cv.cv, 0.400_891_9, 6);
    assert_eq!(cv.reason, None);

    // Not the unweighted figures (population or sample standard deviation).
    let weighted = cv.cv.unwrap();
    assert!((weighted - 0.492_512_3).abs() > 0.09, "{weighted}");
    assert!((weighted - 0.550_645_5).abs() > 0.14, "{weighted}");

    // Against the 小学 limit of 0.50 the county is within it. The sample form
    // (0.5506) would not be.
    let (_, settings) = reference_template();
    assert_eq!(settings.cv_limit_primary, Some(0.50));
    assert_eq!(cv.within(settings.cv_limit_primary), Some(true));
    // Against the 初中 limit of 0.45 it would also be within: 0.4009 ≤ 0.45.
    assert_eq!(cv.within(settings.cv_limit_junior), Some(true));
}

#[test]
fn weighted_cv_leaves_out_schools_with_no_students_and_counts_them() {
    // The five schools alone give exactly the same figures as the six: school F
    // (0 students, value 99) is left out, not averaged in.
    let with_f = coefficient_of_variation(&COUNTY_R4);
    let without_f = coefficient_of_variation(&COUNTY_R4[..5]);
    assert_eq!(without_f.excluded_no_students, 0);
    assert_eq!(with_f.excluded_no_students, 1);
    assert_eq!(
        (with_f.schools, with_f.students, with_f.mean, with_f.cv),
        (
            without_f.schools,
            without_f.students,
            without_f.mean,
            without_f.cv
        )
    );

    // Two empty schools among the five: still 5 counted, 2 excluded.
    let mut more = COUNTY_R4.to_vec();
    more.push((0, 0.0));
    let cv = coefficient_of_variation(&more);
    assert_eq!((cv.schools, cv.excluded_no_students), (5, 2));
    assert_to_decimals(cv.cv, 0.400_891_9, 6);
}

#[test]
fn weighted_cv_with_every_value_zero_has_no_cv_and_says_why() {
    // P = 30 + 70 = 100; X̄ = (30·0 + 70·0) ÷ 100 = 0; S = 0. CV = 0 ÷ 0 is
    // meaningless, so there is no CV.
    let cv = coefficient_of_variation(&[(30, 0.0), (70, 0.0), (0, 5.0)]);
    assert_eq!(
        (cv.schools, cv.excluded_no_students, cv.students),
        (2, 1, 100)
    );
    assert_eq!(cv.mean, Some(0.0));
    assert_eq!(cv.cv, None);
    let reason = cv.reason.as_deref().expect("a reason for no CV");
    assert!(reason.contains("加权平均值为 0"), "{reason}");
    // No CV: whether it is within a limit cannot be said.
    assert_eq!(cv.within(Some(0.50)), None);

    // Only schools with no students: nothing to average, no mean either.
    let none = coefficient_of_variation(&[(0, 3.0), (0, 4.0)]);
    assert_eq!((none.schools, none.excluded_no_students), (0, 2));
    assert_eq!((none.mean, none.cv), (None, None));
    assert!(none.reason.is_some());
}

#[test]
fn weighted_cv_of_a_single_school_is_zero() {
    // P = 250; X̄ = 250·6.4 ÷ 250 = 6.4; S² = 1·(6.4 − 6.4)² = 0; CV = 0 ÷ 6.4 = 0.
    let cv = coefficient_of_variation(&[(250, 6.4)]);
    assert_eq!((cv.schools, cv.students), (1, 250));
    assert_close(cv.mean, 6.4);
    assert_eq!(cv.std_dev, Some(0.0));
    assert_eq!(cv.cv, Some(0.0));
    assert_eq!(cv.reason, None);

    // A single school with students among empty ones is still a single school.
    let cv = coefficient_of_variation(&[(0, 1.0), (250, 6.4), (0, 50.0)]);
    assert_eq!((cv.schools, cv.excluded_no_students), (1, 2));
    assert_eq!(cv.cv, Some(0.0));
}

// ---------------------------------------------------------------------------
// 2. The 6-of-7 rule
// ---------------------------------------------------------------------------

#[test]
fn six_of_seven_school_meeting_all_seven_passes_with_each_value_by_hand() {
    let s = primary_200().only_stage();
    assert_eq!((s.stage, s.students, s.share), (Stage::Primary, 200, 1.0));

    // (code, hand-worked value, reference 小学 threshold), see `primary_200`.
    let expected = [
        ("R1", 4.5, 4.2),
        ("R2", 1.0, 1.0),
        ("R3", 1.0, 0.9),
        ("R4", 5.0, 4.5),
        ("R5", 8.0, 7.5),
        ("R6", 2200.0, 2000.0),
        ("R7", 2.5, 2.3),
    ];
    for (code, value, threshold) in expected {
        let r = ind(&s, code);
        assert_close(r.value, value);
        assert_eq!(r.source, ValueOrigin::Computed, "{code}");
        assert_eq!(r.threshold, Some(threshold), "{code}");
        assert_eq!(r.meets, Some(true), "{code}: {value} ≥ {threshold}");
        assert_eq!(r.shortfall, None, "{code}");
        assert!(r.counted, "{code}");
    }
    // R2 is exactly at its threshold: 2 × 100 ÷ 200 = 1.0 = 1.0, ratio 1.
    assert_close(ind(&s, "R2").ratio, 1.0);
    // R6 counts only the 40 items in use: 40 × 11,000 = 440,000 元.
    let r6 = ind(&s, "R6");
    assert!(r6.basis.contains("40 件在用设备"), "{}", r6.basis);
    assert!(r6.basis.contains("440,000.00 元"), "{}", r6.basis);
    assert!(r6.basis.contains("另有 3 件"), "{}", r6.basis); // 1 scrapped + 2 idle
    assert!(r6.basis.contains("÷ 200 名学生"), "{}", r6.basis);

    assert_eq!(
        s.verdict,
        Verdict::Pass {
            met: 7,
            near_miss: None
        }
    );
}

#[test]
fn six_met_and_the_seventh_at_exactly_85_percent_passes() {
    // R5 at 85%: 0.85 × 7.5 = 6.375 m² per student; × 200 = 1275 m².
    // 1275 ÷ 200 = 6.375; 6.375 ÷ 7.5 = 0.85. Short by 7.5 × 200 − 1275 = 225 m².
    let mut school = primary_200();
    school.profile.sports_area_m2 = Some(1275.0);
    let s = school.only_stage();
    let r5 = ind(&s, "R5");
    assert_close(r5.value, 6.375);
    assert_eq!(r5.meets, Some(false));
    assert_close(r5.ratio, 0.85);
    let short = r5.shortfall.as_ref().unwrap();
    assert_close(Some(short.amount), 225.0);
    assert_eq!(short.unit, "平方米");
    match &s.verdict {
        Verdict::Pass {
            met: 6,
            near_miss: Some(b),
        } => {
            assert_eq!(b.code, "R5");
            assert_close(b.ratio, 0.85);
        }
        v => panic!("expected a pass with R5 as the near miss: {v:?}"),
    }

    // R6 at 85%: 0.85 × 2000 = 1700 元 per student; × 200 = 340,000 元 = 34 × 10,000 元.
    // Short by 2000 × 200 − 340,000 = 60,000 元.
    let mut school = primary_200();
    school.equipment = vec![equipment(34, 10_000, EquipmentStatus::InUse)];
    let s = school.only_stage();
    let r6 = ind(&s, "R6");
    assert_close(r6.value, 1700.0);
    assert_close(r6.ratio, 0.85);
    assert_close(r6.shortfall.as_ref().map(|s| s.amount), 60_000.0);
    assert!(
        matches!(&s.verdict, Verdict::Pass { met: 6, near_miss: Some(b) } if b.code == "R6"),
        "{:?}",
        s.verdict
    );
}

#[test]
fn six_met_and_the_seventh_at_84_9_percent_fails() {
    // R5 at 84.9%: 0.849 × 7.5 = 6.3675 m² per student; × 200 = 1273.5 m².
    // Short by 1500 − 1273.5 = 226.5 m².
    let mut school = primary_200();
    school.profile.sports_area_m2 = Some(1273.5);
    let s = school.only_stage();
    let r5 = ind(&s, "R5");
    assert_close(r5.value, 6.3675);
    assert_close(r5.ratio, 0.849);
    assert_close(r5.shortfall.as_ref().map(|s| s.amount), 226.5);
    match &s.verdict {
        Verdict::Fail {
            met: 6,
            not_met,
            reason,
        } => {
            assert_eq!(not_met.len(), 1);
            assert_eq!(not_met[0].code, "R5");
            assert_close(not_met[0].ratio, 0.849);
            assert!(reason.contains("6/7"), "{reason}");
            assert!(reason.contains("R5"), "{reason}");
            assert!(reason.contains("84.90%"), "{reason}");
            assert!(reason.contains("不足 85%"), "{reason}");
        }
        v => panic!("expected a fail on R5 at 84.9%: {v:?}"),
    }

    // R6 at 84.9%: 0.849 × 2000 = 1698 元 per student; × 200 = 339,600 元
    // = 12 × 28,300 元. Short by 400,000 − 339,600 = 60,400 元.
    let mut school = primary_200();
    school.equipment = vec![equipment(12, 28_300, EquipmentStatus::InUse)];
    let s = school.only_stage();
    let r6 = ind(&s, "R6");
    assert_close(r6.value, 1698.0);
    assert_close(r6.ratio, 0.849);
    assert_close(r6.shortfall.as_ref().map(|s| s.amount), 60_400.0);
    assert!(
        matches!(&s.verdict, Verdict::Fail { met: 6, not_met, .. } if not_met.len() == 1 && not_met[0].code == "R6"),
        "{:?}",
        s.verdict
    );
}

#[test]
fn five_met_fails_even_when_both_misses_are_above_85_percent() {
    // R5 at 1275 m²: 6.375 ÷ 7.5 = 0.85 (as above).
    // R7 with 4 rooms: 4 × 100 ÷ 200 = 2.0; 2.0 ÷ 2.3 = 0.869565…; short by
    // (2.3 − 2.0) × 200 ÷ 100 = 0.6 rooms, rounded up to 1 room.
    // 5 met, 2 not met → fail, though each miss alone would be within 85%.
    let mut school = primary_200();
    school.profile.sports_area_m2 = Some(1275.0);
    school.profile.multimedia_classrooms = Some(4);
    let s = school.only_stage();
    let r7 = ind(&s, "R7");
    assert_close(r7.value, 2.0);
    assert_to_decimals(r7.ratio, 0.869_565, 6); // 2 ÷ 2.3 = 20 ÷ 23 = 0.8695652…
    assert_eq!(r7.shortfall.as_ref().map(|s| s.amount), Some(1.0));
    match &s.verdict {
        Verdict::Fail {
            met: 5,
            not_met,
            reason,
        } => {
            let codes: Vec<&str> = not_met.iter().map(|b| b.code.as_str()).collect();
            assert_eq!(codes, ["R5", "R7"]);
            assert!(reason.contains("5/7"), "{reason}");
            assert!(reason.contains("至少需要 6 项"), "{reason}");
        }
        v => panic!("expected a fail with 5 met: {v:?}"),
    }

    // 5 met with one far miss (R3: 1 teacher → 1 × 100 ÷ 200 = 0.5; 0.5 ÷ 0.9 = 0.5556)
    // and R7 at 2.0 also fails.
    let mut school = primary_200();
    school.profile.teachers_pe_arts = Some(1);
    school.profile.multimedia_classrooms = Some(4);
    let s = school.only_stage();
    assert_close(ind(&s, "R3").value, 0.5);
    assert_to_decimals(ind(&s, "R3").ratio, 0.5556, 4); // 5 ÷ 9 = 0.5555…
    assert!(
        matches!(&s.verdict, Verdict::Fail { met: 5, not_met, .. } if not_met.len() == 2),
        "{:?}",
        s.verdict
    );
}

#[test]
fn a_missing_input_leaves_the_verdict_undetermined_not_failed() {
    // The code documents Verdict::Undetermined ("无法判定") whenever one of
    // R1–R7 has no value or no threshold. Here the profile has no 县级以上骨干教师数,
    // and the other six meet their thresholds (as in `primary_200`).
    let mut school = primary_200();
    school.profile.teachers_key = None;
    let s = school.only_stage();
    let r2 = ind(&s, "R2");
    assert_eq!((r2.value, r2.meets, r2.ratio), (None, None, None));
    assert_eq!(r2.source, ValueOrigin::Missing);
    assert_eq!(r2.shortfall, None);
    assert!(
        r2.basis.contains("学校概况未填写县级以上骨干教师数"),
        "{}",
        r2.basis
    );
    match &s.verdict {
        Verdict::Undetermined {
            missing,
            met,
            not_met,
        } => {
            assert_eq!(missing.len(), 1);
            assert_eq!(missing[0].code, "R2");
            assert!(
                missing[0].reason.contains("骨干教师"),
                "{}",
                missing[0].reason
            );
            assert_eq!(*met, 6);
            assert!(not_met.is_empty());
        }
        v => panic!("expected undetermined: {v:?}"),
    }

    // An empty equipment ledger is a missing R6, not an R6 of 0 元.
    let mut school = primary_200();
    school.equipment.clear();
    let s = school.only_stage();
    assert_eq!(ind(&s, "R6").value, None);
    assert!(
        matches!(&s.verdict, Verdict::Undetermined { missing, met: 6, .. } if missing[0].code == "R6"),
        "{:?}",
        s.verdict
    );
}

// ---------------------------------------------------------------------------
// 3. A school with no students
// ---------------------------------------------------------------------------

#[test]
fn a_school_with_zero_students_computes_no_indicator_and_says_so() {
    // Every grade recorded as 0, every other figure filled in: a per-student value
    // would divide by 0, so none is computed.
    let mut school = primary_200();
    for g in [
        &mut school.profile.students_grade_1,
        &mut school.profile.students_grade_2,
        &mut school.profile.students_grade_3,
        &mut school.profile.students_grade_4,
        &mut school.profile.students_grade_5,
        &mut school.profile.students_grade_6,
    ] {
        *g = Some(0);
    }
    let s = school.only_stage();
    assert_eq!(s.students, 0);
    for r in s.indicators.iter().chain([&s.books]) {
        assert_eq!(r.value, None, "{}", r.code);
        assert_eq!(r.computed, None, "{}", r.code);
        assert_eq!(r.source, ValueOrigin::Missing, "{}", r.code);
        assert_eq!(
            (r.meets, r.ratio, &r.shortfall),
            (None, None, &None),
            "{}",
            r.code
        );
        assert_eq!(r.basis, "小学学段没有学生，不计算生均值", "{}", r.code);
    }
    assert!(
        s.notes
            .iter()
            .any(|n| n == "小学学段没有学生，不计算生均值"),
        "{:?}",
        s.notes
    );
    match &s.verdict {
        Verdict::Undetermined {
            missing,
            met,
            not_met,
        } => {
            let codes: Vec<&str> = missing.iter().map(|m| m.code.as_str()).collect();
            assert_eq!(codes, ["R1", "R2", "R3", "R4", "R5", "R6", "R7"]);
            assert!(missing.iter().all(|m| m.reason.contains("没有学生")));
            assert_eq!((*met, not_met.len()), (0, 0));
        }
        v => panic!("expected undetermined: {v:?}"),
    }

    // No grade filled in at all: the note says the figure is missing, not zero.
    let mut school = primary_200();
    for g in [
        &mut school.profile.students_grade_1,
        &mut school.profile.students_grade_2,
        &mut school.profile.students_grade_3,
        &mut school.profile.students_grade_4,
        &mut school.profile.students_grade_5,
        &mut school.profile.students_grade_6,
    ] {
        *g = None;
    }
    let s = school.only_stage();
    assert_eq!(
        ind(&s, "R1").basis,
        "学校概况未填写一至六年级学生数，不计算生均值"
    );
    assert!(matches!(&s.verdict, Verdict::Undetermined { missing, .. } if missing.len() == 7));
}

// ---------------------------------------------------------------------------
// 4. A 九年一贯制 school
// ---------------------------------------------------------------------------

/// A 九年一贯制 school: 300 students in grades 1–6 (50 each) and 200 in grades
/// 7–9 (70 + 70 + 60).
///
/// The split (1 : 1.1 per student, as indicators.md and `evaluate_school`'s
/// doc say: "each with its own students (weights 小学 : 初中 = 1 : 1.1 …)"):
///   weighted students = 300 × 1 + 200 × 1.1 = 300 + 220 = 520
///   小学 share = 300 ÷ 520 = 15/26 = 0.576923… (57.69%)
///   初中 share = 220 ÷ 520 = 11/26 = 0.423077… (42.31%)
/// So one 初中 student gets 1.1 times what one 小学 student gets. Every
/// school-wide figure below is a multiple of 26, so both parts are exact:
///
/// | figure                       | total     | 小学 (×15/26) | 初中 (×11/26) |
/// |------------------------------|-----------|---------------|---------------|
/// | R1 qualified teachers        | 26        | 15            | 11            |
/// | R2 key teachers              | 13        | 7.5           | 5.5           |
/// | R3 PE/art teachers           | 13        | 7.5           | 5.5           |
/// | R4 teaching rooms m²         | 2600      | 1500          | 1100          |
/// | R5 sports m²                 | 5200      | 3000          | 2200          |
/// | R6 equipment in use 元       | 1,300,000 | 750,000       | 550,000       |
/// | R7 multimedia rooms          | 13        | 7.5           | 5.5           |
/// | books on shelf / on loan     | 13,000    | 7,500         | 5,500         |
fn nine_year_school() -> School {
    let mut p = profile(SchoolType::NineYear);
    p.name = Some("石门乡九年一贯制学校".into());
    p.students_grade_1 = Some(50);
    p.students_grade_2 = Some(50);
    p.students_grade_3 = Some(50);
    p.students_grade_4 = Some(50);
    p.students_grade_5 = Some(50);
    p.students_grade_6 = Some(50);
    p.students_grade_7 = Some(70);
    p.students_grade_8 = Some(70);
    p.students_grade_9 = Some(60);
    p.teachers_qualified = Some(26);
    p.teachers_key = Some(13);
    p.teachers_pe_arts = Some(13);
    p.teaching_area_m2 = Some(2600.0);
    p.sports_area_m2 = Some(5200.0);
    p.multimedia_classrooms = Some(13);
    let mut s = School::new(p);
    s.equipment = vec![
        equipment(130, 10_000, EquipmentStatus::InUse), // 1,300,000 元
        equipment(5, 10_000, EquipmentStatus::Repair),  // not counted
    ];
    s.books = vec![
        books(12_000, BookStatus::OnShelf),
        books(1_000, BookStatus::OnLoan),
        books(2_600, BookStatus::Weeded), // not counted
    ];
    s
}

#[test]
fn nine_year_school_is_two_stages_with_their_own_students_and_shares_15_26_and_11_26() {
    let e = nine_year_school().eval();
    assert_eq!(e.stages.len(), 2);
    let (pr, jr) = (&e.stages[0], &e.stages[1]);
    assert_eq!((pr.stage, pr.students), (Stage::Primary, 300)); // 6 × 50
    assert_eq!((jr.stage, jr.students), (Stage::Junior, 200)); // 70 + 70 + 60
    assert_close(Some(pr.share), 15.0 / 26.0); // 300 ÷ 520
    assert_close(Some(jr.share), 11.0 / 26.0); // 220 ÷ 520
    assert_to_decimals(Some(pr.share), 0.576_923, 6);
    assert_to_decimals(Some(jr.share), 0.423_077, 6);
    // Not the split by weight alone (1 ÷ 2.1 = 0.476190, 1.1 ÷ 2.1 = 0.523810),
    // which would ignore enrollment.
    assert!((pr.share - 0.476_190).abs() > 0.1);

    for (stage, pct) in [(pr, "57.69%"), (jr, "42.31%")] {
        assert!(
            stage
                .notes
                .iter()
                .any(|n| n.contains("1:1.1") && n.contains(pct)),
            "{:?}",
            stage.notes
        );
    }
    assert!(e.teaching_point.is_none());
}

#[test]
fn nine_year_school_each_stage_against_its_own_thresholds() {
    let e = nine_year_school().eval();
    let (pr, jr) = (&e.stages[0], &e.stages[1]);

    // 小学, 300 students, against the 小学 thresholds:
    //   R1 15 × 100 ÷ 300 = 5.0     ≥ 4.2
    //   R2 7.5 × 100 ÷ 300 = 2.5    ≥ 1.0
    //   R3 7.5 × 100 ÷ 300 = 2.5    ≥ 0.9
    //   R4 1500 ÷ 300 = 5.0         ≥ 4.5
    //   R5 3000 ÷ 300 = 10.0        ≥ 7.5
    //   R6 750,000 ÷ 300 = 2500     ≥ 2000
    //   R7 7.5 × 100 ÷ 300 = 2.5    ≥ 2.3
    let primary = [
        ("R1", 5.0, 4.2),
        ("R2", 2.5, 1.0),
        ("R3", 2.5, 0.9),
        ("R4", 5.0, 4.5),
        ("R5", 10.0, 7.5),
        ("R6", 2500.0, 2000.0),
        ("R7", 2.5, 2.3),
    ];
    for (code, value, threshold) in primary {
        let r = ind(pr, code);
        assert_eq!(r.stage, Stage::Primary);
        assert_close(r.value, value);
        assert_eq!(r.threshold, Some(threshold), "小学 {code}");
        assert_eq!(r.meets, Some(true), "小学 {code}");
    }
    assert_eq!(
        pr.verdict,
        Verdict::Pass {
            met: 7,
            near_miss: None
        }
    );

    // 初中, 200 students, against the 初中 thresholds:
    //   R1 11 × 100 ÷ 200 = 5.5     ≥ 5.3
    //   R2 5.5 × 100 ÷ 200 = 2.75   ≥ 1.0
    //   R3 5.5 × 100 ÷ 200 = 2.75   ≥ 0.9
    //   R4 1100 ÷ 200 = 5.5         < 5.8 (would meet 小学's 4.5): 5.5 ÷ 5.8 = 0.948276,
    //      short by (5.8 − 5.5) × 200 = 60 m²
    //   R5 2200 ÷ 200 = 11.0        ≥ 10.2
    //   R6 550,000 ÷ 200 = 2750     ≥ 2500
    //   R7 5.5 × 100 ÷ 200 = 2.75   ≥ 2.4
    let junior = [
        ("R1", 5.5, 5.3),
        ("R2", 2.75, 1.0),
        ("R3", 2.75, 0.9),
        ("R4", 5.5, 5.8),
        ("R5", 11.0, 10.2),
        ("R6", 2750.0, 2500.0),
        ("R7", 2.75, 2.4),
    ];
    for (code, value, threshold) in junior {
        let r = ind(jr, code);
        assert_eq!(r.stage, Stage::Junior);
        assert_close(r.value, value);
        assert_eq!(r.threshold, Some(threshold), "初中 {code}");
        assert_eq!(r.meets, Some(code != "R4"), "初中 {code}");
    }
    let j4 = ind(jr, "R4");
    assert_to_decimals(j4.ratio, 0.948_276, 6); // 55 ÷ 58 = 0.9482758…
    assert_close(j4.shortfall.as_ref().map(|s| s.amount), 60.0);
    // The basis shows the split: 2600 m² school-wide, 42.31% of it = 1100 m², ÷ 200.
    assert!(j4.basis.contains("2600"), "{}", j4.basis);
    assert!(j4.basis.contains("1:1.1"), "{}", j4.basis);
    assert!(j4.basis.contains("42.31%"), "{}", j4.basis);
    assert!(j4.basis.contains("1100 平方米"), "{}", j4.basis);
    assert!(j4.basis.contains("÷ 200 名学生"), "{}", j4.basis);
    // R6 counts only the 130 items in use (the 5 under repair are left out):
    // 1,300,000 × 11/26 = 550,000 元.
    let j6 = ind(jr, "R6");
    assert!(j6.basis.contains("1,300,000.00 元"), "{}", j6.basis);
    assert!(j6.basis.contains("550,000.00 元"), "{}", j6.basis);

    match &jr.verdict {
        Verdict::Pass {
            met: 6,
            near_miss: Some(b),
        } => {
            assert_eq!(b.code, "R4");
            assert_to_decimals(b.ratio, 0.948_276, 6);
        }
        v => panic!("expected 初中 to pass with R4 as the near miss: {v:?}"),
    }

    // Books: 12,000 + 1,000 = 13,000 counted (2,600 weeded left out).
    //   小学 13,000 × 15/26 = 7,500 ÷ 300 = 25.0 ≥ 25 (exactly)
    //   初中 13,000 × 11/26 = 5,500 ÷ 200 = 27.5 < 35, short by (35 − 27.5) × 200 = 1,500 册
    assert_close(pr.books.value, 25.0);
    assert_eq!(
        (pr.books.threshold, pr.books.meets),
        (Some(25.0), Some(true))
    );
    assert_close(jr.books.value, 27.5);
    assert_eq!(
        (jr.books.threshold, jr.books.meets),
        (Some(35.0), Some(false))
    );
    assert_close(jr.books.shortfall.as_ref().map(|s| s.amount), 1500.0);
}

// ---------------------------------------------------------------------------
// 5. Teaching points under each county policy
// ---------------------------------------------------------------------------

/// A 教学点 of 40 students (grades 1–4, 10 each) under central school
/// 4301230100: 2 qualified teachers → R1 = 2 × 100 ÷ 40 = 5.0.
fn teaching_point() -> School {
    let mut p = profile(SchoolType::TeachingPoint);
    p.school_code = Some("4301230107".into());
    p.name = Some("石门乡黄泥坳教学点".into());
    p.parent_school = Some("4301230100".into());
    p.students_grade_1 = Some(10);
    p.students_grade_2 = Some(10);
    p.students_grade_3 = Some(10);
    p.students_grade_4 = Some(10);
    p.teachers_qualified = Some(2);
    School::new(p)
}

#[test]
fn teaching_point_evaluated_alone_under_the_evaluate_alone_policy() {
    let mut tp = teaching_point();
    tp.settings.teaching_point_policy = Some(TeachingPointPolicy::EvaluateAlone);
    let e = tp.eval();
    let status = e.teaching_point.expect("a teaching point has a status");
    assert_eq!(status.treatment, TeachingPointTreatment::EvaluatedAlone);
    assert_eq!(status.policy, Some(TeachingPointPolicy::EvaluateAlone));
    assert_eq!(status.explanation, "县模板规定教学点单独评估");
    assert_eq!(e.stages.len(), 1);
    assert_eq!(e.stages[0].stage, Stage::Primary);
    assert_close(ind(&e.stages[0], "R1").value, 5.0);

    // No policy set: evaluated alone, and it says the setting is missing.
    tp.settings.teaching_point_policy = None;
    let status = tp.eval().teaching_point.unwrap();
    assert_eq!(status.treatment, TeachingPointTreatment::EvaluatedAlone);
    assert_eq!(status.policy, None);
    assert_eq!(status.explanation, "县模板未设置教学点政策，按单独评估");
}

#[test]
fn teaching_point_folded_into_parent_names_the_parent() {
    let mut tp = teaching_point();
    tp.settings.teaching_point_policy = Some(TeachingPointPolicy::FoldIntoParent);
    let e = tp.eval();
    let status = e.teaching_point.unwrap();
    assert_eq!(
        status.treatment,
        TeachingPointTreatment::FoldedIntoParent {
            parent_school: Some("4301230100".into())
        }
    );
    assert_eq!(status.policy, Some(TeachingPointPolicy::FoldIntoParent));
    assert_eq!(
        status.explanation,
        "县模板规定教学点并入中心校（4301230100）评估"
    );
    // The point's own figures are still computed: R1 = 2 × 100 ÷ 40 = 5.0.
    assert_close(ind(&e.stages[0], "R1").value, 5.0);

    // No parent in the profile: folded, and it says the parent is missing.
    tp.profile.parent_school = None;
    let status = tp.eval().teaching_point.unwrap();
    assert_eq!(
        status.treatment,
        TeachingPointTreatment::FoldedIntoParent {
            parent_school: None
        }
    );
    assert!(
        status.explanation.contains("未填写所属中心校"),
        "{}",
        status.explanation
    );
}

#[test]
fn teaching_point_left_out_below_n_students_and_evaluated_at_or_above_n() {
    let mut tp = teaching_point();
    tp.settings.teaching_point_policy = Some(TeachingPointPolicy::ExcludeUnder);

    // N = 50 (the reference): 40 < 50 → left out, figures still shown.
    tp.settings.teaching_point_min_students = Some(50);
    let e = tp.eval();
    let status = e.teaching_point.unwrap();
    assert_eq!(
        status.treatment,
        TeachingPointTreatment::LeftOut {
            students: 40,
            min_students: 50
        }
    );
    assert_eq!(status.policy, Some(TeachingPointPolicy::ExcludeUnder));
    assert_eq!(
        status.explanation,
        "教学点只有 40 名学生，少于县模板规定的 50 名，不参评（仍显示各项数据）"
    );
    assert_close(ind(&e.stages[0], "R1").value, 5.0);

    // N = 41: 40 < 41 → still left out (one short).
    tp.settings.teaching_point_min_students = Some(41);
    assert_eq!(
        tp.eval().teaching_point.unwrap().treatment,
        TeachingPointTreatment::LeftOut {
            students: 40,
            min_students: 41
        }
    );

    // N = 40: 40 is not under 40 → evaluated alone.
    tp.settings.teaching_point_min_students = Some(40);
    let status = tp.eval().teaching_point.unwrap();
    assert_eq!(status.treatment, TeachingPointTreatment::EvaluatedAlone);
    assert_eq!(
        status.explanation,
        "教学点有 40 名学生，不少于县模板规定的 40 名，单独评估"
    );

    // N = 39: above → evaluated alone.
    tp.settings.teaching_point_min_students = Some(39);
    assert_eq!(
        tp.eval().teaching_point.unwrap().treatment,
        TeachingPointTreatment::EvaluatedAlone
    );

    // No N set: evaluated alone, and it says N is missing.
    tp.settings.teaching_point_min_students = None;
    let status = tp.eval().teaching_point.unwrap();
    assert_eq!(status.treatment, TeachingPointTreatment::EvaluatedAlone);
    assert!(
        status.explanation.contains("未设置最少人数"),
        "{}",
        status.explanation
    );

    // Not a teaching point: no teaching-point status at all.
    assert!(primary_200().eval().teaching_point.is_none());
}

// ---------------------------------------------------------------------------
// 6. Books per student (生均图书)
// ---------------------------------------------------------------------------

#[test]
fn books_per_student_counts_shelf_and_loan_but_not_weeded_or_lost() {
    // 200 students; 4,000 on the shelf + 600 on loan = 4,600 counted;
    // 500 weeded + 100 lost = 600 not counted.
    //   4,600 ÷ 200 = 23.0 < 25 (the 小学 template value); 23 ÷ 25 = 0.92;
    //   short by (25 − 23) × 200 = 400 册.
    // Counting the weeded and lost would give 5,200 ÷ 200 = 26.0 ≥ 25: a wrong pass.
    let mut school = primary_200();
    school.books = vec![
        books(4_000, BookStatus::OnShelf),
        books(600, BookStatus::OnLoan),
        books(500, BookStatus::Weeded),
        books(100, BookStatus::Lost),
    ];
    let s = school.only_stage();
    let b = &s.books;
    assert_eq!(b.code, BOOKS_CODE);
    assert_eq!(b.stage, Stage::Primary);
    assert_close(b.value, 23.0);
    assert_eq!(b.threshold, Some(25.0));
    assert_eq!(b.meets, Some(false));
    assert_close(b.ratio, 0.92);
    let short = b.shortfall.as_ref().unwrap();
    assert_eq!(short.amount, 400.0);
    assert_eq!(short.unit, "册");
    assert!(b.basis.contains("4600 册在架或借出图书"), "{}", b.basis);
    assert!(
        b.basis.contains("另有 600 册剔旧或遗失，未计入"),
        "{}",
        b.basis
    );
    assert!(b.basis.contains("÷ 200 名学生"), "{}", b.basis);
    // Its own line: not one of R1–R7, so the verdict is still 7/7.
    assert!(!b.counted);
    assert!(s.indicators.iter().all(|r| r.code != BOOKS_CODE));
    assert_eq!(
        s.verdict,
        Verdict::Pass {
            met: 7,
            near_miss: None
        }
    );

    // The threshold is the county template's: at 20 册, 23 ≥ 20 meets.
    school.settings.books_per_student_primary = Some(20.0);
    let s = school.only_stage();
    assert_eq!(s.books.threshold, Some(20.0));
    assert_eq!(s.books.meets, Some(true));
    assert_eq!(s.books.shortfall, None);
}

#[test]
fn books_per_student_of_a_junior_school_uses_the_junior_template_value() {
    // A 初中 of 100 students (40 + 30 + 30) with 3,500 books on the shelf
    // and 700 weeded: 3,500 ÷ 100 = 35.0 ≥ 35 (the 初中 template value, met
    // exactly). The 700 weeded are not counted. Counted, they would give
    // 42.0, which is not what is asserted.
    let mut p = profile(SchoolType::Junior);
    p.students_grade_7 = Some(40);
    p.students_grade_8 = Some(30);
    p.students_grade_9 = Some(30);
    let mut school = School::new(p);
    school.books = vec![
        books(3_500, BookStatus::OnShelf),
        books(700, BookStatus::Weeded),
    ];
    let s = school.only_stage();
    assert_eq!((s.stage, s.students), (Stage::Junior, 100));
    assert_close(s.books.value, 35.0);
    assert_eq!(s.books.threshold, Some(35.0));
    assert_eq!(s.books.meets, Some(true));

    // One copy fewer on the shelf: 3,499 ÷ 100 = 34.99 < 35, short by
    // (35 − 34.99) × 100 = 1 册.
    school.books[0].copies = 3_499;
    let s = school.only_stage();
    assert_close(s.books.value, 34.99);
    assert_eq!(s.books.meets, Some(false));
    assert_eq!(s.books.shortfall.as_ref().map(|s| s.amount), Some(1.0));
}
