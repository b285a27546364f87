//! `tpsync demo`: a sample county on a real server, so a newcomer sees the
//! township and county dashboards filled.
//!
//!     tpsync demo --data ./tpsync-demo [--listen 127.0.0.1:8080] [--schools 24]
//!
//! The command starts the server in-process, as `serve` does. On a new data
//! directory it then calls [`seed`] against itself over HTTP, through the
//! same paths every phone and administrator uses: the first administrator
//! (`/v1/setup`), the county, a school list in CSV with Chinese headers,
//! one account per school, township and county; the county template
//! written by the county user and synced; then every school recorded by
//! its teacher on a phone replica of its own and synced in 2–4 rounds, with
//! a township clerk's concurrent corrections and reviews. A data directory
//! that holds a finished demo (the [`SEEDED_MARKER`] file) is served as it
//! is. Either way it prints the logins and `demo ready: http://ADDR/ui/`.
//!
//! [`seed`] knows nothing of the command: any blocking caller (a benchmark)
//! can point it at a fresh server. Everything it writes follows from
//! [`DemoPlan`]'s seed, so every run records the same county (only the
//! server's own clocks, such as when a device last synced, differ).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sync_core::harness::Rng;
use sync_core::indicators::{
    evaluate_school, reference_template, SchoolEvaluation, SchoolInput, Verdict, WellKnown,
    BOOKS_CODE,
};
use sync_core::records::{
    ArchiveBox, ArchiveItem, ArchiveItemStatus, Book, BookStatus, BoxStatus, CatalogueEntry,
    ChecklistRow, ChecklistRowStatus, EntryStatus, EquipmentItem, EquipmentStatus, ImprovementPlan,
    IndicatorTemplate, PlanStatus, Retention, ReviewAction, ReviewEvent, SchoolProfile, SchoolType,
    Section, Stage, StocktakeCount, StocktakeLine, StocktakeSession, StocktakeStatus,
    TemplateSettings, ValueSource,
};
use sync_core::store::MemoryStorage;
use sync_core::workload::{sample_book, sample_equipment};
use sync_core::{
    ActorId, CountyId, DeviceId, DocId, DocKind, EditContext, PeerId, Record, RecordDoc, RecordId,
    Replica, SchoolId, UserId,
};
use tpsync_client::{Client, ClientConfig, ClientError, NewUser, Role, Tokens};
use tpsync_server::ServerConfig;

// ---------------------------------------------------------------------------
// The county
// ---------------------------------------------------------------------------

/// The password of every demo account (printed with the logins).
pub const DEMO_PASSWORD: &str = "demo-2026";
/// Schools and teaching points seeded by default.
pub const DEFAULT_SCHOOLS: usize = 24;
/// The generator's seed by default: the same seed records the same county.
pub const DEFAULT_SEED: u64 = 2026_09_01;
/// The fewest schools a plan may have (two per township).
pub const MIN_SCHOOLS: usize = 6;
/// The most schools a plan may have (the brief's largest county).
pub const MAX_SCHOOLS: usize = 600;
/// The demo county's code (fictional).
pub const COUNTY_CODE: &str = "430199";
/// The demo county's name (fictional).
pub const COUNTY_NAME: &str = "云溪县";
/// The administrator's username.
pub const ADMIN_USER: &str = "admin";
/// The county bureau's username.
pub const COUNTY_USER: &str = "county";
/// The file in the data directory that says the demo county was seeded to
/// the end; it holds the [`DemoSummary`] as JSON.
pub const SEEDED_MARKER: &str = "demo-seeded.json";

/// (code, name, username of its township user).
const TOWNSHIPS: [(&str, &str, &str); 3] = [
    ("430199101", "云溪镇", "yunxi"),
    ("430199102", "石门乡", "shimen"),
    ("430199103", "白沙镇", "baisha"),
];

/// The first day of the autumn term the demo's records are dated in
/// (2026-09-01); every school's work falls within the following 80 days.
const TERM_START: (i64, u32, u32) = (2026, 9, 1);

const SURNAMES: [&str; 30] = [
    "李", "王", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林",
    "何", "郭", "马", "罗", "梁", "宋", "郑", "谢", "韩", "唐", "冯", "彭", "曾", "肖",
];
const GIVEN_NAMES: [&str; 30] = [
    "秀兰", "建国", "丽", "洋", "静", "帆", "敏", "伟", "芳", "强", "婷", "磊", "军", "红", "峰",
    "燕", "斌", "娟", "超", "霞", "勇", "佳", "浩", "琳", "志华", "桂英", "春梅", "海涛", "文",
    "晓东",
];
const PLACE_ENDINGS: [&str; 12] = [
    "坪", "冲", "湾", "岭", "坳", "垅", "铺", "寨", "塘", "桥", "庄", "坡",
];

/// (name, category code, unit, unit price in fen, room, brand).
const EQUIPMENT_KINDS: [(&str, &str, &str, i64, &str, &str); 28] = [
    (
        "学生计算机",
        "05010102",
        "台",
        450_000,
        "计算机教室",
        "联想",
    ),
    ("教师计算机", "05010101", "台", 520_000, "办公室", "联想"),
    (
        "交互式触控一体机",
        "05020301",
        "台",
        1_680_000,
        "多媒体教室",
        "希沃",
    ),
    ("投影仪", "05020101", "台", 320_000, "多功能室", "爱普生"),
    ("实物展台", "05020201", "台", 150_000, "多媒体教室", "鸿合"),
    ("校园广播系统", "05030101", "套", 1_200_000, "广播室", "ITC"),
    ("学生显微镜", "03040401", "台", 38_000, "科学室", "江南"),
    ("地球仪", "03010203", "个", 6_500, "科学室", "星球"),
    ("托盘天平", "03020107", "台", 12_000, "科学室", "双杰"),
    ("人体骨骼模型", "03040701", "套", 46_000, "科学室", "育才"),
    ("电学实验箱", "03030201", "套", 28_000, "科学室", "育才"),
    ("光学实验盒", "03030301", "套", 18_000, "科学室", "育才"),
    ("磁铁实验盒", "03030401", "套", 6_800, "科学室", "育才"),
    ("电子琴", "07010301", "台", 98_000, "音乐室", "雅马哈"),
    ("手风琴", "07010302", "台", 150_000, "音乐室", "鹦鹉"),
    ("腰鼓", "07020101", "个", 4_500, "音乐室", "星海"),
    ("口风琴", "07010401", "个", 8_500, "音乐室", "奇美"),
    ("画架", "07030101", "个", 12_000, "美术室", "马利"),
    ("石膏像", "07030201", "个", 9_000, "美术室", "马利"),
    ("篮球", "06020101", "个", 9_000, "体育器材室", "李宁"),
    ("足球", "06020201", "个", 8_500, "体育器材室", "李宁"),
    (
        "乒乓球台",
        "06030101",
        "张",
        180_000,
        "体育器材室",
        "红双喜",
    ),
    ("跳绳", "06050101", "根", 1_200, "体育器材室", "李宁"),
    ("篮球架", "06020102", "副", 680_000, "操场", "泰山"),
    ("图书架", "09010101", "个", 68_000, "图书室", "得力"),
    ("阅览桌椅", "09010201", "套", 85_000, "图书室", "得力"),
    ("净水设备", "10010101", "台", 420_000, "食堂", "沁园"),
    (
        "视频监控系统",
        "05040101",
        "套",
        960_000,
        "门卫室",
        "海康威视",
    ),
];

const FUNDING: [&str; 5] = [
    "薄改项目",
    "义务教育均衡发展专项",
    "公用经费",
    "社会捐赠",
    "县教育局调拨",
];

/// (title, author, publisher, 中图法 class).
const BOOK_TITLES: [(&str, &str, &str, &str); 40] = [
    ("西游记", "吴承恩", "人民文学出版社", "I242.4"),
    ("水浒传", "施耐庵", "人民文学出版社", "I242.4"),
    ("三国演义", "罗贯中", "人民文学出版社", "I242.4"),
    ("红楼梦", "曹雪芹", "人民文学出版社", "I242.4"),
    ("朝花夕拾", "鲁迅", "人民文学出版社", "I210.4"),
    ("骆驼祥子", "老舍", "人民文学出版社", "I246.5"),
    ("城南旧事", "林海音", "中国青年出版社", "I287.5"),
    ("草房子", "曹文轩", "江苏凤凰少年儿童出版社", "I287.45"),
    ("青铜葵花", "曹文轩", "江苏凤凰少年儿童出版社", "I287.45"),
    ("稻草人", "叶圣陶", "人民文学出版社", "I287.7"),
    ("寄小读者", "冰心", "人民文学出版社", "I287.6"),
    ("繁星·春水", "冰心", "人民文学出版社", "I226"),
    ("呼兰河传", "萧红", "人民文学出版社", "I246.5"),
    ("边城", "沈从文", "人民文学出版社", "I246.5"),
    ("小英雄雨来", "管桦", "人民文学出版社", "I287.45"),
    ("宝葫芦的秘密", "张天翼", "人民文学出版社", "I287.45"),
    ("没头脑和不高兴", "任溶溶", "少年儿童出版社", "I287.8"),
    ("皮皮鲁传", "郑渊洁", "二十一世纪出版社", "I287.45"),
    (
        "十万个为什么",
        "少年儿童出版社编",
        "少年儿童出版社",
        "Z228.1",
    ),
    ("小学生百科全书", "编委会", "中国大百科全书出版社", "Z228.1"),
    ("中华上下五千年", "林汉达", "中国少年儿童出版社", "K209"),
    ("中国神话故事", "袁珂", "中国少年儿童出版社", "I277.5"),
    ("唐诗三百首", "蘅塘退士", "中华书局", "I222.742"),
    ("成语故事", "中华书局编辑部", "中华书局", "H136.31"),
    ("新华字典", "中国社会科学院语言研究所", "商务印书馆", "H163"),
    (
        "现代汉语词典",
        "中国社会科学院语言研究所",
        "商务印书馆",
        "H164",
    ),
    ("数学家的故事", "李毓佩", "湖北少年儿童出版社", "K816.11"),
    ("趣味物理学", "别莱利曼", "中国青年出版社", "O4-49"),
    ("昆虫记", "法布尔", "人民文学出版社", "Q96-49"),
    ("安徒生童话", "安徒生", "人民文学出版社", "I534.88"),
    ("格林童话", "格林兄弟", "人民文学出版社", "I516.88"),
    ("小王子", "圣埃克苏佩里", "人民文学出版社", "I565.88"),
    ("爱的教育", "亚米契斯", "人民文学出版社", "I546.84"),
    ("海底两万里", "凡尔纳", "人民文学出版社", "I565.44"),
    ("鲁滨逊漂流记", "笛福", "人民文学出版社", "I561.44"),
    ("童年", "高尔基", "人民文学出版社", "I512.44"),
    (
        "钢铁是怎样炼成的",
        "奥斯特洛夫斯基",
        "人民文学出版社",
        "I512.55",
    ),
    ("夏洛的网", "E.B.怀特", "上海译文出版社", "I712.85"),
    ("平凡的世界", "路遥", "北京十月文艺出版社", "I247.5"),
    (
        "湖南乡土地理",
        "湖南教育出版社编",
        "湖南教育出版社",
        "K926.4",
    ),
];

/// The county's archive catalogue: (code, title, category, retention,
/// indicator the evidence is for).
const CATALOGUE: [(&str, &str, &str, Retention, Option<&str>); 8] = [
    (
        "A-01",
        "学校章程及发展规划",
        "学校管理",
        Retention::Permanent,
        None,
    ),
    (
        "A-02",
        "教职工名册及学历证明",
        "队伍建设",
        Retention::Years30,
        Some("R1"),
    ),
    (
        "A-03",
        "县级以上骨干教师认定文件",
        "队伍建设",
        Retention::Years30,
        Some("R2"),
    ),
    (
        "A-04",
        "学生学籍花名册",
        "教育教学",
        Retention::Years30,
        None,
    ),
    (
        "A-05",
        "校舍及运动场地面积测绘资料",
        "资源配置",
        Retention::Permanent,
        Some("R4"),
    ),
    (
        "A-06",
        "仪器设备台账及验收单",
        "资源配置",
        Retention::Years30,
        Some("R6"),
    ),
    (
        "A-07",
        "图书登记簿及采购凭证",
        "资源配置",
        Retention::Years30,
        Some(BOOKS_CODE),
    ),
    (
        "A-08",
        "多媒体教室配备清单",
        "资源配置",
        Retention::Years10,
        Some("R7"),
    ),
];

// ---------------------------------------------------------------------------
// Plan and summary
// ---------------------------------------------------------------------------

/// What [`seed`] records: how many schools, from which seed, with which
/// password, and how it reaches the server's first administrator.
#[derive(Clone, Debug)]
pub struct DemoPlan {
    /// Schools and teaching points, spread over three townships
    /// ([`MIN_SCHOOLS`] to [`MAX_SCHOOLS`]).
    pub schools: usize,
    /// The generator's seed: the same seed gives the same county.
    pub seed: u64,
    /// Every account's password.
    pub password: String,
    /// The server's one-time setup code, when it has no administrator yet.
    /// `None`: an administrator [`ADMIN_USER`] with [`Self::password`]
    /// exists already (and the server has no county yet).
    pub setup_code: Option<String>,
    /// Print a line per school to stdout while seeding.
    pub progress: bool,
}

impl DemoPlan {
    /// A plan for `schools` schools from `seed`, with [`DEMO_PASSWORD`], no
    /// setup code and no progress lines.
    pub fn new(schools: usize, seed: u64) -> Self {
        Self {
            schools,
            seed,
            password: DEMO_PASSWORD.to_owned(),
            setup_code: None,
            progress: false,
        }
    }

    /// Checks the plan before anything is sent.
    pub fn check(&self) -> Result<(), String> {
        if !(MIN_SCHOOLS..=MAX_SCHOOLS).contains(&self.schools) {
            return Err(format!(
                "the demo county needs {MIN_SCHOOLS} to {MAX_SCHOOLS} schools (each of its 3 townships has a central school and at least one teaching point), not {}; pass --schools with a number in that range",
                self.schools
            ));
        }
        if self.password.chars().count() < 8 {
            return Err("the demo password must have at least 8 characters".into());
        }
        Ok(())
    }

    /// How many sign-ins seeding makes (the server's per-address limit
    /// must allow them within a minute, or seeding waits).
    pub fn sign_ins(&self) -> usize {
        // admin, county, townships, teachers, second devices
        2 + TOWNSHIPS.len() + self.schools + second_devices(self.schools)
    }
}

/// One account of the demo county, as printed for the newcomer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoLogin {
    /// `admin`, `county`, `township` or `teacher`.
    pub role: String,
    pub username: String,
    /// The school, township or county code; none for the administrator.
    pub unit: Option<String>,
    /// What this account sees, in words.
    pub sees: String,
}

/// One school or teaching point as seeded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoSchool {
    /// 学校标识码
    pub code: String,
    pub name: String,
    /// `central`, `primary`, `junior`, `nine_year` or `teaching_point`.
    pub school_type: String,
    /// A teaching point's central school (its profile's `parent_school`).
    pub parent_school: Option<String>,
    pub students: u32,
    /// The R1–R7 verdict on the teacher's phone after the last sync, in
    /// words: 达标, or 未达标 with the indicators short.
    pub verdict: String,
    /// Whether every stage passes R1–R7.
    pub passes: bool,
    /// Syncs the teacher's phone made.
    pub syncs: u32,
}

/// One township and its schools.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoTownship {
    pub code: String,
    pub name: String,
    /// Its township user.
    pub username: String,
    pub schools: Vec<DemoSchool>,
}

/// What [`seed`] did: the logins, the schools by township, and counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DemoSummary {
    pub county_code: String,
    pub county_name: String,
    /// Every account's password.
    pub password: String,
    pub logins: Vec<DemoLogin>,
    pub townships: Vec<DemoTownship>,
    /// Records written, by record kind (`Book`, `EquipmentItem`, …).
    pub records: BTreeMap<String, u64>,
    /// Devices signed in that never synced: (username, device id).
    pub unsynced_devices: Vec<(String, String)>,
    /// Record edits made by a township user on a school's documents
    /// concurrently with its teacher: (school code, what).
    pub township_edits: Vec<(String, String)>,
    /// HTTP syncs made in all (teachers, township, county).
    pub syncs: u64,
    /// How long seeding took.
    pub seconds: f64,
}

impl DemoSummary {
    /// Every school's code, in township order.
    pub fn school_codes(&self) -> Vec<String> {
        self.townships
            .iter()
            .flat_map(|t| t.schools.iter().map(|s| s.code.clone()))
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Planning: who is where, and which figures each school reaches
// ---------------------------------------------------------------------------

/// How a school's figures relate to the thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Every indicator met.
    Pass,
    /// One indicator at 88–96% of its threshold: still passes (6 of 7).
    NearMiss,
    /// One indicator well short: fails.
    ShortOne,
    /// Two indicators short: fails.
    ShortTwo,
}

/// Which outcomes schools get, in turn (from an offset drawn per plan).
const OUTCOMES: [Outcome; 8] = [
    Outcome::Pass,
    Outcome::ShortOne,
    Outcome::Pass,
    Outcome::NearMiss,
    Outcome::Pass,
    Outcome::ShortTwo,
    Outcome::Pass,
    Outcome::ShortOne,
];

/// A township clerk's correction made while the teacher edits offline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClerkEdit {
    /// The clerk re-measures the sports ground; the teacher meanwhile adds a
    /// teacher to the staff count: both survive the merge.
    SportsArea,
    /// Clerk and teacher both change the number of classes: a conflict.
    Classes,
}

/// What the township does with the school's submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TownReview {
    Pending,
    ApproveAll,
    ApproveSome,
    Return(Section),
}

#[derive(Clone, Debug)]
struct SchoolPlan {
    index: usize,
    code: String,
    name: String,
    ty: SchoolType,
    township: usize,
    grades: [u32; 9],
    parent: Option<String>,
    username: String,
    teacher: String,
    head: String,
    figures: Figures,
    /// Syncs the teacher makes (2–4).
    rounds: usize,
    second_device: bool,
    clerk_edit: Option<ClerkEdit>,
    review: TownReview,
    seed: u64,
}

/// The school-wide amounts the profile and the records add up to.
#[derive(Clone, Debug)]
struct Figures {
    teachers_total: u32,
    teachers_qualified: u32,
    teachers_key: u32,
    teachers_pe_arts: u32,
    teaching_area_m2: f64,
    sports_area_m2: f64,
    multimedia_classrooms: u32,
    /// Σ quantity × unit price of the equipment in use.
    equipment_fen: i64,
    /// Whether `equipment_fen` meets R6 (it was drawn at or above the
    /// threshold), so rounding must stay on that side.
    equipment_met: bool,
    /// Copies on the shelf or on loan.
    book_copies: u64,
    classes: u32,
}

fn type_zh(ty: SchoolType) -> &'static str {
    match ty {
        SchoolType::TeachingPoint => "教学点",
        SchoolType::Primary => "完全小学",
        SchoolType::Junior => "初中",
        SchoolType::NineYear => "九年一贯制",
        SchoolType::Central => "乡镇中心学校",
    }
}

fn type_code(ty: SchoolType) -> &'static str {
    match ty {
        SchoolType::TeachingPoint => "teaching_point",
        SchoolType::Primary => "primary",
        SchoolType::Junior => "junior",
        SchoolType::NineYear => "nine_year",
        SchoolType::Central => "central",
    }
}

/// How many teachers sign in on a second device that never syncs.
fn second_devices(schools: usize) -> usize {
    if schools >= 12 {
        3
    } else {
        2
    }
}

/// The school type of the `n`-th school (from 0) of township `t`: a central
/// school, a teaching point, a 初中 (a 九年一贯制 in the second township),
/// then primaries and teaching points.
fn slot_type(t: usize, n: usize) -> SchoolType {
    match n {
        0 => SchoolType::Central,
        1 | 4 | 6 => SchoolType::TeachingPoint,
        2 if t == 1 => SchoolType::NineYear,
        2 => SchoolType::Junior,
        3 | 5 => SchoolType::Primary,
        7 if t % 2 == 1 => SchoolType::Primary,
        7 => SchoolType::TeachingPoint,
        n if n % 2 == 0 => SchoolType::Primary,
        _ => SchoolType::TeachingPoint,
    }
}

fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i + 1));
    }
}

/// `total` split into `parts` shares of roughly equal size.
fn split(total: u64, parts: usize, rng: &mut Rng) -> Vec<u64> {
    let weights: Vec<u64> = (0..parts).map(|_| 80 + rng.below(41) as u64).collect();
    let sum: u64 = weights.iter().sum();
    let mut out: Vec<u64> = weights.iter().map(|w| total * w / sum).collect();
    let mut left = total - out.iter().sum::<u64>();
    let mut i = 0;
    while left > 0 {
        out[i % parts] += 1;
        left -= 1;
        i += 1;
    }
    out
}

fn between(rng: &mut Rng, lo: u32, hi: u32) -> u32 {
    lo + rng.below((hi - lo + 1) as usize) as u32
}

fn ratio(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * (rng.below(10_001) as f64 / 10_000.0)
}

fn enrollment(ty: SchoolType, rng: &mut Rng) -> [u32; 9] {
    let mut g = [0u32; 9];
    let mut fill = |from: usize, n: usize, total: u32, rng: &mut Rng| {
        for (i, v) in split(total as u64, n, rng).into_iter().enumerate() {
            g[from + i] = v as u32;
        }
    };
    match ty {
        SchoolType::TeachingPoint => {
            let grades = [2, 3, 3, 4][rng.below(4)];
            let total = between(rng, 8, 45);
            fill(0, grades, total, rng);
        }
        SchoolType::Primary => {
            let total = between(rng, 150, 600);
            fill(0, 6, total, rng);
        }
        SchoolType::Central => {
            let total = between(rng, 380, 600);
            fill(0, 6, total, rng);
        }
        SchoolType::Junior => {
            let total = between(rng, 300, 900);
            fill(6, 3, total, rng);
        }
        SchoolType::NineYear => {
            let primary = between(rng, 200, 420);
            let junior = between(rng, 150, 360);
            fill(0, 6, primary, rng);
            fill(6, 3, junior, rng);
        }
    }
    g
}

/// The stages of a school as the evaluation sees them: (stage, students,
/// share of the school-wide figures).
fn stages(ty: SchoolType, grades: &[u32; 9]) -> Vec<(Stage, u32, f64)> {
    let primary: u32 = grades[..6].iter().sum();
    let junior: u32 = grades[6..].iter().sum();
    match ty {
        SchoolType::Junior => vec![(Stage::Junior, junior, 1.0)],
        SchoolType::NineYear => {
            let weighted = primary as f64 + 1.1 * junior as f64;
            vec![
                (Stage::Primary, primary, primary as f64 / weighted),
                (Stage::Junior, junior, 1.1 * junior as f64 / weighted),
            ]
        }
        _ => vec![(Stage::Primary, primary, 1.0)],
    }
}

/// The school-wide amount that just meets `threshold(stage)` in every
/// stage, for a figure divided by students (× 100 if `per_hundred`).
fn needed(
    stages: &[(Stage, u32, f64)],
    per_hundred: bool,
    threshold: impl Fn(Stage) -> f64,
) -> f64 {
    stages
        .iter()
        .map(|&(stage, students, share)| {
            let t = threshold(stage) * students as f64 / share;
            if per_hundred {
                t / 100.0
            } else {
                t
            }
        })
        .fold(0.0, f64::max)
}

/// Draws how far each indicator is from its threshold, and the figures.
fn figures(
    ty: SchoolType,
    grades: &[u32; 9],
    outcome: Outcome,
    rng: &mut Rng,
    indicators: &[IndicatorTemplate],
    settings: &TemplateSettings,
) -> Figures {
    let st = stages(ty, grades);
    let students: u32 = grades.iter().sum();
    // Which indicators fall short, and how far.
    const OFTEN_SHORT: [WellKnown; 9] = [
        WellKnown::R6,
        WellKnown::R2,
        WellKnown::R3,
        WellKnown::R7,
        WellKnown::R5,
        WellKnown::R6,
        WellKnown::R2,
        WellKnown::R4,
        WellKnown::R1,
    ];
    const CONTINUOUS: [WellKnown; 3] = [WellKnown::R4, WellKnown::R5, WellKnown::R6];
    let mut short: Vec<(WellKnown, f64)> = Vec::new();
    match outcome {
        Outcome::Pass => {}
        Outcome::NearMiss => {
            short.push((CONTINUOUS[rng.below(3)], ratio(rng, 0.88, 0.96)));
        }
        Outcome::ShortOne | Outcome::ShortTwo => {
            let n = if outcome == Outcome::ShortOne { 1 } else { 2 };
            while short.len() < n {
                let wk = OFTEN_SHORT[rng.below(OFTEN_SHORT.len())];
                if short.iter().all(|(w, _)| *w != wk) {
                    short.push((wk, ratio(rng, 0.45, 0.8)));
                }
            }
        }
    }
    let equipment_met = short.iter().all(|(w, _)| *w != WellKnown::R6);
    let mut amount = |wk: WellKnown| -> f64 {
        let need = needed(&st, wk.per_hundred_students(), |stage| {
            indicators
                .iter()
                .find(|t| t.code == wk.code() && t.stage == stage)
                .map_or(0.0, |t| t.threshold)
        });
        let r = short
            .iter()
            .find(|(w, _)| *w == wk)
            .map(|(_, r)| *r)
            .unwrap_or_else(|| ratio(rng, 1.08, 1.6));
        let x = need * r;
        match (wk.per_hundred_students(), wk == WellKnown::R6, r >= 1.0) {
            (true, _, true) => x.ceil().max(1.0),
            (true, _, false) => x.floor(),
            // Money in fen.
            (false, true, true) => (x * 100.0).ceil(),
            (false, true, false) => (x * 100.0).floor(),
            // Areas to 0.1 m².
            (false, false, true) => (x * 10.0).ceil() / 10.0,
            (false, false, false) => (x * 10.0).floor() / 10.0,
        }
    };
    let qualified = amount(WellKnown::R1) as u32;
    let key = amount(WellKnown::R2) as u32;
    let pe_arts = amount(WellKnown::R3) as u32;
    let teaching_area_m2 = amount(WellKnown::R4);
    let sports_area_m2 = amount(WellKnown::R5);
    let equipment_fen = amount(WellKnown::R6) as i64;
    let multimedia_classrooms = amount(WellKnown::R7) as u32;

    let teachers_total = if ty == SchoolType::TeachingPoint {
        (1 + between(rng, 1, 2))
            .max(qualified)
            .max(key)
            .max(pe_arts)
    } else {
        (students.div_ceil(17))
            .max(qualified + between(rng, 1, 4))
            .max(key)
            .max(pe_arts)
    };
    let classes = if ty == SchoolType::TeachingPoint {
        grades.iter().filter(|g| **g > 0).count() as u32
    } else {
        grades
            .iter()
            .filter(|g| **g > 0)
            .map(|g| g.div_ceil(45))
            .sum()
    };
    let books_need = needed(&st, false, |stage| match stage {
        Stage::Primary => settings.books_per_student_primary.unwrap_or(25.0),
        Stage::Junior => settings.books_per_student_junior.unwrap_or(35.0),
    });
    let book_copies = if rng.chance(0.7) {
        (books_need * ratio(rng, 1.05, 1.4)).ceil()
    } else {
        (books_need * ratio(rng, 0.6, 0.95)).floor()
    } as u64;
    Figures {
        teachers_total,
        teachers_qualified: qualified,
        teachers_key: key,
        teachers_pe_arts: pe_arts,
        teaching_area_m2,
        sports_area_m2,
        multimedia_classrooms,
        equipment_fen,
        equipment_met,
        book_copies,
        classes,
    }
}

fn school_code(t: usize, n: usize) -> String {
    format!("{COUNTY_CODE}{}{:03}", t + 1, n + 1)
}

fn plan_schools(plan: &DemoPlan) -> Vec<SchoolPlan> {
    let mut rng = Rng::new(plan.seed);
    let (indicators, settings) = reference_template();
    let mut people: Vec<String> = SURNAMES
        .iter()
        .flat_map(|s| GIVEN_NAMES.iter().map(move |g| format!("{s}{g}")))
        .collect();
    shuffle(&mut people, &mut rng);
    let mut places: Vec<String> = SURNAMES
        .iter()
        .flat_map(|s| PLACE_ENDINGS.iter().map(move |e| format!("{s}家{e}")))
        .collect();
    shuffle(&mut places, &mut rng);
    let mut person = 0usize;
    let mut next_person = || {
        let p = people[person % people.len()].clone();
        person += 1;
        p
    };
    let mut place = 0usize;
    let mut next_place = || {
        let p = &places[place % places.len()];
        let p = if place >= places.len() {
            format!("新{p}")
        } else {
            p.clone()
        };
        place += 1;
        p
    };
    let offset = rng.below(OUTCOMES.len());
    let per_township: Vec<usize> = (0..TOWNSHIPS.len())
        .map(|t| plan.schools / TOWNSHIPS.len() + usize::from(t < plan.schools % TOWNSHIPS.len()))
        .collect();
    let mut out: Vec<SchoolPlan> = Vec::with_capacity(plan.schools);
    for (t, &count) in per_township.iter().enumerate() {
        let (_, town, user) = TOWNSHIPS[t];
        for n in 0..count {
            let index = out.len();
            let ty = slot_type(t, n);
            let name = match ty {
                SchoolType::Central => format!("{town}中心学校"),
                SchoolType::Junior => format!("{town}初级中学"),
                SchoolType::NineYear => format!("{town}九年一贯制学校"),
                SchoolType::Primary => format!("{town}{}小学", next_place()),
                SchoolType::TeachingPoint => format!("{}教学点", next_place()),
            };
            let grades = enrollment(ty, &mut rng);
            let outcome = OUTCOMES[(index + offset) % OUTCOMES.len()];
            let figures = figures(ty, &grades, outcome, &mut rng, &indicators, &settings);
            let rounds = 2 + rng.below(3);
            out.push(SchoolPlan {
                index,
                code: school_code(t, n),
                name,
                ty,
                township: t,
                grades,
                parent: (ty == SchoolType::TeachingPoint).then(|| school_code(t, 0)),
                username: format!("{user}-{:02}", n + 1),
                teacher: next_person(),
                head: next_person(),
                figures,
                rounds,
                second_device: false,
                clerk_edit: None,
                review: match index % 4 {
                    0 => TownReview::ApproveAll,
                    1 => TownReview::Return(
                        [Section::Archive, Section::Equipment, Section::Checklist][index % 3],
                    ),
                    2 => TownReview::Pending,
                    _ => TownReview::ApproveSome,
                },
                seed: plan.seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            });
        }
    }
    // Second devices that never sync, and the clerk's corrections: on
    // schools spread over the county.
    let n = out.len();
    for k in 0..second_devices(n) {
        out[(1 + k * (n / 3 + 1)) % n].second_device = true;
    }
    // The clerk edits a primary-stage school of the first and second
    // township (never a small point: its figures are too close to call).
    let mut edits = [ClerkEdit::SportsArea, ClerkEdit::Classes].into_iter();
    for t in 0..2 {
        if let Some(s) = out
            .iter_mut()
            .find(|s| s.township == t && matches!(s.ty, SchoolType::Central | SchoolType::Primary))
        {
            s.clerk_edit = edits.next();
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A day of the term (0 = [`TERM_START`]) as `YYYY-MM-DD`.
fn term_date(day: i64) -> String {
    let (y, m, d) =
        civil_from_days(days_from_civil(TERM_START.0, TERM_START.1, TERM_START.2) + day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A moment of a term day, Beijing time, in ms since the epoch.
fn term_ms(day: i64, hour: i64, minute: i64) -> i64 {
    let days = days_from_civil(TERM_START.0, TERM_START.1, TERM_START.2) + day;
    (days * 86_400 + hour * 3_600 + minute * 60 - 8 * 3_600) * 1_000
}

fn random_date(rng: &mut Rng, from_year: i64, to_year: i64) -> String {
    let y = from_year + rng.below((to_year - from_year + 1) as usize) as i64;
    format!("{y:04}-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28))
}

/// An ISBN-13 of a Chinese publisher (978-7-…) with its check digit.
fn isbn(rng: &mut Rng) -> String {
    let body = format!("9787{:08}", rng.below(100_000_000));
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, b)| (b - b'0') as u32 * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

// ---------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------

/// Edit times of one device: set to a moment of the term, then a little
/// later with every edit.
struct Clock {
    user: UserId,
    device: DeviceId,
    now_ms: i64,
}

impl Clock {
    fn tick(&mut self) -> EditContext {
        self.now_ms += 40_000;
        EditContext {
            user: self.user.clone(),
            device: self.device.clone(),
            now_ms: self.now_ms,
        }
    }

    /// Moves to `hour:minute` of term day `day` (never backwards).
    fn at(&mut self, day: i64, hour: i64, minute: i64) {
        self.now_ms = self.now_ms.max(term_ms(day, hour, minute));
    }
}

/// A signed-in device with its own replica (in memory: the server is what
/// the demo is about).
struct Device {
    tokens: Tokens,
    replica: Replica<MemoryStorage>,
    clock: Clock,
    syncs: u32,
}

fn server_peer() -> PeerId {
    PeerId::new("server").expect("a valid peer id")
}

/// A replica's actor, drawn from the plan's seed, so the same seed gives
/// the same change history (and the same winner of a conflict).
fn actor(seed: u64, n: u64) -> ActorId {
    let mut rng = Rng::new(seed ^ n.wrapping_mul(0xA24B_AED4_963E_E407));
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
    bytes[8..].copy_from_slice(&rng.next_u64().to_be_bytes());
    ActorId::from(&bytes[..])
}

impl Device {
    fn new(tokens: Tokens, actor: ActorId) -> Result<Self, String> {
        let user: UserId = tokens.user.id.parse().map_err(|e| {
            format!(
                "the server gave user {} an id that is not a valid user id ({e})",
                tokens.user.username
            )
        })?;
        let device = tokens.device_id.clone();
        Ok(Self {
            tokens,
            replica: Replica::with_actor(MemoryStorage::new(), actor),
            clock: Clock {
                user,
                device,
                now_ms: 0,
            },
            syncs: 0,
        })
    }

    /// Runs `f` on `doc` with this device's clock; the replica makes it
    /// durable before returning.
    fn edit<T>(
        &mut self,
        doc: &DocId,
        f: impl FnOnce(&mut RecordDoc, &mut Clock) -> sync_core::Result<T>,
    ) -> Result<T, String> {
        let Device { replica, clock, .. } = self;
        replica
            .edit(doc, |d| f(d, clock))
            .map_err(|e| format!("{} could not edit {doc}: {e}", self.tokens.user.username))
    }

    /// Syncs `scope` with the server over HTTP (refreshing the access token
    /// once if it expired).
    fn sync(&mut self, client: &Client, scope: &[DocId]) -> Result<(), String> {
        let peer = server_peer();
        let mut result = client.sync(
            &self.tokens.access_token,
            &mut self.replica,
            &peer,
            scope,
            None,
            None,
        );
        if matches!(&result, Err(e) if e.needs_login()) {
            self.tokens = client.refresh(&self.tokens.refresh_token).map_err(|e| {
                format!(
                    "{}'s access token expired and refreshing it failed: {e}",
                    self.tokens.user.username
                )
            })?;
            result = client.sync(
                &self.tokens.access_token,
                &mut self.replica,
                &peer,
                scope,
                None,
                None,
            );
        }
        result.map_err(|e| {
            format!(
                "{} on device {} could not sync {} document(s) with {}: {e}",
                self.tokens.user.username,
                self.tokens.device_id,
                scope.len(),
                client.base_url()
            )
        })?;
        self.syncs += 1;
        Ok(())
    }

    fn read<T>(
        &mut self,
        doc: &DocId,
        f: impl FnOnce(&RecordDoc) -> sync_core::Result<T>,
    ) -> Result<T, String> {
        let d = self
            .replica
            .doc(doc)
            .map_err(|e| format!("cannot load {doc}: {e}"))?;
        f(d).map_err(|e| format!("cannot read {doc}: {e}"))
    }
}

/// Signs in, waiting out the server's sign-in limit if it is reached.
fn sign_in(
    client: &Client,
    username: &str,
    password: &str,
    device: &str,
    device_name: &str,
) -> Result<Tokens, String> {
    let id: DeviceId = device
        .parse()
        .map_err(|e| format!("{device:?} is not a valid device id: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        match client.login(username, password, &id, Some(device_name)) {
            Ok(t) => return Ok(t),
            Err(e) if e.status() == Some(429) && Instant::now() < deadline => {
                let wait = match &e {
                    ClientError::Problem {
                        retry_after: Some(d),
                        ..
                    } => *d,
                    _ => Duration::from_secs(5),
                };
                std::thread::sleep(wait.clamp(Duration::from_millis(200), Duration::from_secs(60)));
            }
            Err(e) => {
                return Err(format!(
                    "signing in as {username} on device {device} failed: {e}"
                ))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Seeding
// ---------------------------------------------------------------------------

/// Record counts by kind.
#[derive(Default)]
struct Counts(BTreeMap<String, u64>);

impl Counts {
    fn add<R: Record>(&mut self, n: usize) {
        *self.0.entry(R::SPEC.name.to_owned()).or_default() += n as u64;
    }
}

/// Seeds the demo county on the fresh server at `base_url`, through its
/// HTTP API only, and returns who can sign in and what was written.
///
/// Blocking (the client is); call it from a thread that may block, never
/// from an async task. The server must have no county yet, and no
/// administrator unless [`DemoPlan::setup_code`] is `None`. Fails with a
/// sentence saying which step failed; what was written until then stays
/// on the server (seed a fresh one again).
pub fn seed(base_url: &str, plan: &DemoPlan) -> Result<DemoSummary, String> {
    plan.check()?;
    let started = Instant::now();
    let client = Client::new(base_url, ClientConfig::default()).map_err(|e| e.to_string())?;
    let schools = plan_schools(plan);
    let county_id = CountyId::new(COUNTY_CODE).expect("a valid county code");
    let template = DocId::template(&county_id);
    let mut counts = Counts::default();
    let mut syncs = 0u64;

    // The administrator: the county, the school list, the accounts.
    if let Some(code) = &plan.setup_code {
        client
            .setup(code, ADMIN_USER, &plan.password)
            .map_err(|e| format!("creating the first administrator failed: {e}"))?;
    }
    let admin = sign_in(
        &client,
        ADMIN_USER,
        &plan.password,
        "admin-pc",
        "管理员电脑",
    )?;
    client
        .create_county(&admin.access_token, COUNTY_CODE, COUNTY_NAME)
        .map_err(|e| {
            format!(
                "creating the county {COUNTY_CODE} {COUNTY_NAME} failed: {e}; the demo seeds only a server that has no county yet"
            )
        })?;
    let report = client
        .import_schools(&admin.access_token, schools_csv(&schools).as_bytes(), false)
        .map_err(|e| {
            let rows = e
                .import_report()
                .map(|r| {
                    r.errors
                        .iter()
                        .map(|x| format!("\n  {x}"))
                        .collect::<String>()
                })
                .unwrap_or_default();
            format!("importing the school list failed: {e}{rows}")
        })?;
    if report.schools_created != schools.len() as u64 {
        return Err(format!(
            "the school import created {} schools, not {}: the server already had some of them; seed a fresh server",
            report.schools_created,
            schools.len()
        ));
    }
    let mut users: Vec<(String, Role, String)> =
        vec![(COUNTY_USER.to_owned(), Role::County, COUNTY_CODE.to_owned())];
    for (code, _, user) in TOWNSHIPS {
        users.push((user.to_owned(), Role::Township, code.to_owned()));
    }
    for s in &schools {
        users.push((s.username.clone(), Role::Teacher, s.code.clone()));
    }
    for (username, role, unit) in &users {
        let new = NewUser {
            username: username.clone(),
            password: plan.password.clone(),
            role: *role,
            unit: Some(unit.clone()),
        };
        client
            .create_user(&admin.access_token, &new)
            .map_err(|e| format!("creating the {role} account {username} failed: {e}"))?;
    }

    // The county bureau writes its template and syncs it.
    let county_tokens = sign_in(
        &client,
        COUNTY_USER,
        &plan.password,
        "county-pc",
        "县教育局股室电脑",
    )?;
    let mut county = Device::new(county_tokens, actor(plan.seed, 1))?;
    {
        let mut rng = Rng::new(plan.seed ^ 0x7E3A_17E5);
        let (indicators, settings) = reference_template();
        county.clock.at(0, 9, 0);
        county.edit(&template, |d, clock| {
            for ind in &indicators {
                d.insert(&clock.tick(), rng.record_id(), ind)?;
            }
            d.update_singleton::<TemplateSettings>(&clock.tick(), |s| *s = settings.clone())?;
            for (code, title, category, retention, indicator) in CATALOGUE {
                let entry = CatalogueEntry {
                    code: code.into(),
                    title: title.into(),
                    category: Some(category.into()),
                    retention: Some(retention),
                    indicator_code: indicator.map(Into::into),
                    status: EntryStatus::Active,
                };
                d.insert(&clock.tick(), rng.record_id(), &entry)?;
            }
            Ok(())
        })?;
        counts.add::<IndicatorTemplate>(indicators.len());
        counts.add::<TemplateSettings>(1);
        counts.add::<CatalogueEntry>(CATALOGUE.len());
        county.sync(&client, std::slice::from_ref(&template))?;
    }

    // One township clerk per township, on the central school's laptop.
    let mut towns: Vec<Device> = Vec::new();
    for (t, (code, name, user)) in TOWNSHIPS.iter().enumerate() {
        let tokens = sign_in(
            &client,
            user,
            &plan.password,
            &format!("town-{code}"),
            &format!("{name}中心学校电脑"),
        )?;
        towns.push(Device::new(tokens, actor(plan.seed, 10 + t as u64))?);
    }

    // Every school, recorded by its teacher.
    let mut seeded: Vec<DemoSchool> = Vec::new();
    let mut unsynced = Vec::new();
    let mut township_edits = Vec::new();
    for s in &schools {
        let school_started = Instant::now();
        let (result, edit) = record_school(&client, plan, s, &mut towns[s.township], &mut counts)?;
        syncs += result.syncs as u64;
        if let Some(what) = edit {
            township_edits.push((s.code.clone(), what));
        }
        if s.second_device {
            let device = format!("pad-{}", s.code);
            sign_in(
                &client,
                &s.username,
                &plan.password,
                &device,
                &format!("{}的平板", s.teacher),
            )?;
            unsynced.push((s.username.clone(), device));
        }
        if plan.progress {
            println!(
                "  [{:>3}/{}] {} {} ({}, {} students): {} syncs, {} — {:.1?}",
                s.index + 1,
                schools.len(),
                s.code,
                s.name,
                type_zh(s.ty),
                result.students,
                result.syncs,
                result.verdict,
                school_started.elapsed()
            );
        }
        seeded.push(result);
    }

    // The townships review what their schools submitted.
    for s in &schools {
        let town = &mut towns[s.township];
        let n = review_school(&client, s, town, &mut county)?;
        counts.add::<ReviewEvent>(n);
    }
    syncs += county.syncs as u64 + towns.iter().map(|t| t.syncs as u64).sum::<u64>();

    Ok(summary(
        plan,
        &schools,
        seeded,
        counts,
        unsynced,
        township_edits,
        syncs,
        started.elapsed(),
    ))
}

/// The county's school list as its Excel sheet: Chinese headers, UTF-8.
fn schools_csv(schools: &[SchoolPlan]) -> String {
    let mut csv = String::from(
        "学校标识码,学校名称,学校类型,乡镇代码,乡镇名称,一年级,二年级,三年级,四年级,五年级,六年级,七年级,八年级,九年级\n",
    );
    for s in schools {
        let (tcode, tname, _) = TOWNSHIPS[s.township];
        let grades: Vec<String> = s.grades.iter().map(u32::to_string).collect();
        csv.push_str(&format!(
            "{},{},{},{tcode},{tname},{}\n",
            s.code,
            s.name,
            type_zh(s.ty),
            grades.join(",")
        ));
    }
    csv
}

/// What recording a school gave.
fn record_school(
    client: &Client,
    plan: &DemoPlan,
    s: &SchoolPlan,
    town: &mut Device,
    counts: &mut Counts,
) -> Result<(DemoSchool, Option<String>), String> {
    let mut rng = Rng::new(s.seed);
    let school = SchoolId::new(s.code.as_str()).expect("a valid school code");
    let doc = |k| DocId::school(&school, k).expect("a school document id");
    let tokens = sign_in(
        client,
        &s.username,
        &plan.password,
        &format!("phone-{}", s.code),
        &format!("{}的手机", s.teacher),
    )?;
    let scope = client
        .me(&tokens.access_token)
        .map_err(|e| format!("reading {}'s sync scope failed: {e}", s.username))?
        .scope
        .all();
    let mut phone = Device::new(tokens, actor(plan.seed, 1_000 + s.index as u64))?;
    let county_id = CountyId::new(COUNTY_CODE).expect("a valid county code");
    let template = DocId::template(&county_id);

    // The term's four working days for this school, and after which of
    // them the phone finds a signal.
    let d1 = 1 + rng.below(10) as i64;
    let d2 = d1 + 3 + rng.below(8) as i64;
    let d3 = d2 + 5 + rng.below(11) as i64;
    let d4 = d3 + 5 + rng.below(16) as i64;
    let syncs_after: &[usize] = match s.rounds {
        2 => &[2, 4],
        3 => &[1, 3, 4],
        _ => &[1, 2, 3, 4],
    };
    let first_sync = syncs_after[0];
    let mut clerk_note = None;
    let mut ledger: Vec<(RecordId, EquipmentItem)> = Vec::new();

    for session in 1..=4usize {
        let day = [d1, d2, d3, d4][session - 1];
        phone.clock.at(day, 8, 30 + rng.below(60) as i64);
        match session {
            1 => {
                write_profile(&mut phone, s, &doc(DocKind::Profile))?;
                counts.add::<SchoolProfile>(1);
                ledger =
                    write_equipment(&mut phone, s, &doc(DocKind::Equipment), &mut rng, counts)?;
            }
            2 => write_books(&mut phone, s, &doc(DocKind::Books), &mut rng, counts)?,
            3 => {
                weed_and_lend(&mut phone, &doc(DocKind::Books), &mut rng, day)?;
                write_archive(
                    &mut phone,
                    s,
                    &doc(DocKind::Archive),
                    &template,
                    &mut rng,
                    counts,
                )?;
                write_checklist(&mut phone, s, &school, &template, &mut rng, counts)?;
            }
            _ => {
                write_stocktake(
                    &mut phone,
                    s,
                    &doc(DocKind::Equipment),
                    &ledger,
                    &mut rng,
                    day,
                    counts,
                )?;
                let whole_archive = s.review == TownReview::ApproveAll;
                finish_archive(
                    &mut phone,
                    &doc(DocKind::Archive),
                    &mut rng,
                    day,
                    whole_archive,
                )?;
                let n = submit_sections(&mut phone, s, &school, &template, &mut rng)?;
                counts.add::<ReviewEvent>(n);
            }
        }
        // The teacher's offline edit made while the clerk corrects the
        // same school.
        if session == first_sync + 1 {
            if let Some(edit) = s.clerk_edit {
                let profile = doc(DocKind::Profile);
                phone.edit(&profile, |d, clock| {
                    d.update_singleton::<SchoolProfile>(&clock.tick(), |p| match edit {
                        ClerkEdit::SportsArea => p.teachers_total = p.teachers_total.map(|n| n + 1),
                        ClerkEdit::Classes => p.classes = p.classes.map(|n| n + 1),
                    })
                })?;
            }
        }
        if syncs_after.contains(&session) {
            phone.sync(client, &scope)?;
        }
        // Right after the teacher's first sync, the township clerk corrects
        // a figure on the central school's laptop.
        if session == first_sync {
            if let Some(edit) = s.clerk_edit {
                let profile = doc(DocKind::Profile);
                town.clock.at(day + 1, 15, 0);
                town.sync(client, std::slice::from_ref(&profile))?;
                let what = town.edit(&profile, |d, clock| {
                    let p: SchoolProfile = d.singleton()?;
                    let mut what = String::new();
                    d.update_singleton::<SchoolProfile>(&clock.tick(), |q| match edit {
                        ClerkEdit::SportsArea => {
                            let area = p.sports_area_m2.unwrap_or(0.0);
                            let new = ((area * 1.02) * 10.0).round() / 10.0;
                            what = format!(
                                "sports_area_m2 {area} → {new} (re-measured), while the teacher changed teachers_total"
                            );
                            q.sports_area_m2 = Some(new);
                        }
                        ClerkEdit::Classes => {
                            let c = p.classes.unwrap_or(1);
                            let new = c.saturating_sub(1).max(1);
                            what = format!(
                                "classes {c} → {new} while the teacher set {}: a conflict to resolve",
                                c + 1
                            );
                            q.classes = Some(new);
                        }
                    })?;
                    Ok(what)
                })?;
                town.sync(client, std::slice::from_ref(&profile))?;
                clerk_note = Some(what);
            }
        }
    }

    let evaluation = evaluate(&mut phone, &school, &template)?;
    let (verdict, passes) = verdict_words(&evaluation);
    Ok((
        DemoSchool {
            code: s.code.clone(),
            name: s.name.clone(),
            school_type: type_code(s.ty).to_owned(),
            parent_school: s.parent.clone(),
            students: s.grades.iter().sum(),
            verdict,
            passes,
            syncs: phone.syncs,
        },
        clerk_note,
    ))
}

fn write_profile(phone: &mut Device, s: &SchoolPlan, doc: &DocId) -> Result<(), String> {
    let (_, town, _) = TOWNSHIPS[s.township];
    let f = &s.figures;
    let g = |i: usize| {
        let junior = i >= 6;
        let has_stage = match s.ty {
            SchoolType::Junior => junior,
            SchoolType::NineYear => true,
            _ => !junior,
        };
        has_stage.then_some(s.grades[i])
    };
    phone.edit(doc, |d, clock| {
        d.update_singleton::<SchoolProfile>(&clock.tick(), |p| {
            p.school_code = Some(s.code.clone());
            p.name = Some(s.name.clone());
            p.school_type = Some(s.ty);
            p.township = Some(town.to_owned());
            p.parent_school = s.parent.clone();
            p.students_grade_1 = g(0);
            p.students_grade_2 = g(1);
            p.students_grade_3 = g(2);
            p.students_grade_4 = g(3);
            p.students_grade_5 = g(4);
            p.students_grade_6 = g(5);
            p.students_grade_7 = g(6);
            p.students_grade_8 = g(7);
            p.students_grade_9 = g(8);
            p.classes = Some(f.classes);
            p.teachers_total = Some(f.teachers_total);
            p.teachers_qualified = Some(f.teachers_qualified);
            p.teachers_key = Some(f.teachers_key);
            p.teachers_pe_arts = Some(f.teachers_pe_arts);
            p.teaching_area_m2 = Some(f.teaching_area_m2);
            p.sports_area_m2 = Some(f.sports_area_m2);
            p.multimedia_classrooms = Some(f.multimedia_classrooms);
        })
    })?;
    Ok(())
}

/// The ledger: lines in use adding up to the planned value, and a few more
/// entered and then set idle, damaged or scrapped with a reason.
fn write_equipment(
    phone: &mut Device,
    s: &SchoolPlan,
    doc: &DocId,
    rng: &mut Rng,
    counts: &mut Counts,
) -> Result<Vec<(RecordId, EquipmentItem)>, String> {
    let small = s.ty == SchoolType::TeachingPoint;
    let lines = if small {
        between(rng, 14, 22)
    } else {
        between(rng, 28, 48)
    } as usize;
    let mut kinds: Vec<usize> = (0..EQUIPMENT_KINDS.len()).collect();
    shuffle(&mut kinds, rng);
    let mut items: Vec<EquipmentItem> = Vec::with_capacity(lines + 6);
    for n in 0..lines {
        let k = kinds[n % kinds.len()];
        let (name, category, unit, price, room, brand) = EQUIPMENT_KINDS[k];
        let cheap = price < 20_000;
        let quantity = match (small, cheap) {
            (true, true) => between(rng, 2, 12),
            (true, false) => between(rng, 1, 2),
            (false, true) => between(rng, 10, 60),
            (false, false) => between(rng, 1, 8),
        };
        let acquired = random_date(rng, 2016, 2026);
        let mut item = sample_equipment(n);
        item.name = name.into();
        item.category_code = Some(category.into());
        item.brand = Some(brand.into());
        item.model = Some(format!("{}-{}", brand_code(brand), 100 + rng.below(900)));
        item.unit = Some(unit.into());
        item.quantity = quantity;
        item.unit_price_fen = price;
        item.funding_source = Some(FUNDING[rng.below(FUNDING.len())].into());
        item.keeper = Some(s.teacher.clone());
        item.room = Some(if small { "教室" } else { room }.into());
        item.acquired_on = Some(acquired);
        items.push(item);
    }
    // Scale the quantities to the planned value, then top up or trim.
    let target = s.figures.equipment_fen.max(0);
    let value = |items: &[EquipmentItem]| items.iter().map(EquipmentItem::value_fen).sum::<i64>();
    let scale = target as f64 / value(&items).max(1) as f64;
    for item in &mut items {
        item.quantity = ((item.quantity as f64 * scale).floor() as u32).max(1);
    }
    // Trim: the costliest lines give up units, or go (a small school
    // cannot own one of everything).
    while value(&items) > target && items.len() > 1 {
        let (i, _) = items
            .iter()
            .enumerate()
            .max_by_key(|(_, e)| e.value_fen())
            .expect("lines");
        let price = items[i].unit_price_fen.max(1);
        let fewer = (value(&items) - target + price - 1) / price;
        if i64::from(items[i].quantity) > fewer {
            items[i].quantity -= fewer as u32;
        } else {
            items.remove(i);
        }
    }
    // Top up: the cheapest line fills what is left, so a passing school
    // reaches its target and a short one stays just under it.
    let left = target - value(&items);
    if left > 0 {
        let (i, _) = items
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.unit_price_fen)
            .expect("lines");
        let price = items[i].unit_price_fen.max(1);
        let more = if s.figures.equipment_met {
            (left + price - 1) / price
        } else {
            left / price
        };
        items[i].quantity += more as u32;
    }
    // Numbered in order once the lines are final.
    for (n, item) in items.iter_mut().enumerate() {
        let year = item
            .acquired_on
            .as_deref()
            .map_or("2024", |d| &d[..4])
            .to_owned();
        item.asset_no = format!("YQ-{year}-{:04}", n + 1);
    }
    // Retired lines: entered in use, then idle, damaged or scrapped.
    const RETIRED: [(EquipmentStatus, &str); 5] = [
        (EquipmentStatus::Idle, "学生减少，暂时闲置，存放器材室"),
        (
            EquipmentStatus::Scrapped,
            "使用年限已满，主板损坏无维修价值",
        ),
        (EquipmentStatus::Scrapped, "受潮霉变，无法使用"),
        (EquipmentStatus::Damaged, "屏幕碎裂，待维修"),
        (EquipmentStatus::Repair, "已送县电教站维修"),
    ];
    let retired = between(rng, 2, if small { 3 } else { 6 }) as usize;
    let mut retire: Vec<(usize, EquipmentStatus, &str)> = Vec::new();
    for r in 0..retired {
        let (name, category, unit, price, room, brand) =
            EQUIPMENT_KINDS[kinds[(lines + r) % kinds.len()]];
        let mut item = sample_equipment(items.len());
        item.asset_no = format!("YQ-2015-{:04}", items.len() + 1);
        item.name = name.into();
        item.category_code = Some(category.into());
        item.brand = Some(brand.into());
        item.unit = Some(unit.into());
        item.quantity = between(rng, 1, 3);
        item.unit_price_fen = price;
        item.funding_source = Some(FUNDING[rng.below(FUNDING.len())].into());
        item.keeper = Some(s.teacher.clone());
        item.room = Some(if small { "教室" } else { room }.into());
        item.acquired_on = Some(random_date(rng, 2010, 2015));
        let (status, reason) = RETIRED[rng.below(RETIRED.len())];
        retire.push((items.len(), status, reason));
        items.push(item);
    }
    let ids: Vec<RecordId> = items.iter().map(|_| rng.record_id()).collect();
    let today = term_date_of(phone.clock.now_ms);
    phone.edit(doc, |d, clock| {
        for (id, item) in ids.iter().zip(&items) {
            d.insert(&clock.tick(), *id, item)?;
        }
        for &(i, status, reason) in &retire {
            d.update::<EquipmentItem>(&clock.tick(), ids[i], |e| {
                e.status = status;
                e.status_reason = Some(reason.into());
                e.status_date = Some(today.clone());
            })?;
        }
        Ok(())
    })?;
    counts.add::<EquipmentItem>(items.len());
    let retired_at: Vec<usize> = retire.iter().map(|r| r.0).collect();
    Ok(ids
        .into_iter()
        .zip(items)
        .enumerate()
        .filter(|(i, _)| !retired_at.contains(i))
        .map(|(_, x)| x)
        .collect())
}

fn brand_code(brand: &str) -> &'static str {
    match brand {
        "联想" => "LX",
        "希沃" => "SW",
        "爱普生" => "CB",
        "鸿合" => "HH",
        "雅马哈" => "PSR",
        "海康威视" => "DS",
        _ => "JY",
    }
}

/// `YYYY-MM-DD` of a moment in ms, Beijing time.
fn term_date_of(ms: i64) -> String {
    let days = (ms / 1_000 + 8 * 3_600).div_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The book catalogue: titles whose copies on the shelf or on loan add up
/// to the planned count, plus some old ones that are weeded later.
fn write_books(
    phone: &mut Device,
    s: &SchoolPlan,
    doc: &DocId,
    rng: &mut Rng,
    counts: &mut Counts,
) -> Result<(), String> {
    let titles = match s.ty {
        SchoolType::TeachingPoint => between(rng, 60, 120),
        SchoolType::Primary => between(rng, 180, 320),
        SchoolType::Central => between(rng, 260, 420),
        SchoolType::Junior | SchoolType::NineYear => between(rng, 240, 400),
    } as u64;
    let copies = s.figures.book_copies.max(1);
    let titles = titles.min(copies) as usize;
    let per_title: Vec<u64> = split(copies - titles as u64, titles, rng)
        .into_iter()
        .map(|c| c + 1)
        .collect();
    let old = (titles / 20).max(2) + rng.below(titles / 25 + 1);
    let mut books: Vec<Book> = Vec::with_capacity(titles + old);
    for n in 0..titles + old {
        let (title, author, publisher, class) = BOOK_TITLES[rng.below(BOOK_TITLES.len())];
        let volume = if rng.chance(0.2) {
            format!("（第{}册）", 1 + rng.below(6))
        } else {
            String::new()
        };
        let shelf = match class.as_bytes()[0] {
            b'I' => 'A',
            b'K' => 'B',
            b'H' | b'Z' => 'C',
            _ => 'D',
        };
        let old_one = n >= titles;
        let mut b = sample_book(n + 1);
        b.isbn = Some(isbn(rng));
        b.title = format!("{title}{volume}");
        b.author = Some(author.into());
        b.publisher = Some(publisher.into());
        b.pub_year = Some(if old_one {
            1995 + rng.below(10) as u32
        } else {
            2010 + rng.below(16) as u32
        });
        b.clc_class = Some(class.into());
        b.price_fen = Some(1_500 + 100 * rng.below(60) as i64);
        b.copies = if old_one {
            between(rng, 1, 5)
        } else {
            per_title[n] as u32
        };
        b.shelf = Some(format!("{shelf}-{}", 1 + rng.below(8)));
        b.received_on = Some(if old_one {
            random_date(rng, 2005, 2012)
        } else {
            random_date(rng, 2016, 2026)
        });
        books.push(b);
    }
    let ids: Vec<RecordId> = books.iter().map(|_| rng.record_id()).collect();
    phone.edit(doc, |d, clock| {
        for (id, b) in ids.iter().zip(&books) {
            d.insert(&clock.tick(), *id, b)?;
        }
        Ok(())
    })?;
    counts.add::<Book>(books.len());
    Ok(())
}

/// Old books weeded (剔旧) with a reason; a few books lent out.
fn weed_and_lend(phone: &mut Device, doc: &DocId, rng: &mut Rng, day: i64) -> Result<(), String> {
    let books = phone.read(doc, |d| d.list::<Book>())?;
    let today = term_date(day);
    let old: Vec<RecordId> = books
        .iter()
        .filter(|(_, b)| b.pub_year.is_some_and(|y| y < 2005))
        .map(|(id, _)| *id)
        .collect();
    let lend: Vec<RecordId> = books
        .iter()
        .filter(|(_, b)| b.pub_year.is_some_and(|y| y >= 2010))
        .map(|(id, _)| *id)
        .filter(|_| rng.chance(0.05))
        .collect();
    const WEED: [&str; 3] = ["破损严重，无法修补", "内容陈旧，已剔旧", "霉变"];
    let reasons: Vec<&str> = old.iter().map(|_| WEED[rng.below(WEED.len())]).collect();
    phone.edit(doc, |d, clock| {
        for (id, reason) in old.iter().zip(&reasons) {
            d.update::<Book>(&clock.tick(), *id, |b| {
                b.status = BookStatus::Weeded;
                b.status_reason = Some((*reason).into());
                b.status_date = Some(today.clone());
            })?;
        }
        for id in &lend {
            d.update::<Book>(&clock.tick(), *id, |b| {
                b.status = BookStatus::OnLoan;
                b.status_date = Some(today.clone());
            })?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Boxes, and an item for each entry of the county's catalogue (as the
/// phone received it): filed into a box, being collected, or missing.
fn write_archive(
    phone: &mut Device,
    s: &SchoolPlan,
    doc: &DocId,
    template: &DocId,
    rng: &mut Rng,
    counts: &mut Counts,
) -> Result<(), String> {
    let catalogue: Vec<(RecordId, CatalogueEntry)> = phone.read(template, |d| {
        d.list_where::<CatalogueEntry>(|e| e.status == EntryStatus::Active)
    })?;
    if catalogue.is_empty() {
        return Err(format!(
            "{}'s phone has no archive catalogue from the county template after syncing; the county user's template sync must come first",
            s.username
        ));
    }
    let year = 2026;
    let nboxes = if s.ty == SchoolType::TeachingPoint {
        2
    } else {
        between(rng, 3, 4) as usize
    };
    const BOX_CATEGORIES: [(&str, Retention); 4] = [
        ("学校管理", Retention::Permanent),
        ("队伍建设", Retention::Years30),
        ("资源配置", Retention::Years30),
        ("教育教学", Retention::Years10),
    ];
    let boxes: Vec<(RecordId, ArchiveBox)> = (0..nboxes)
        .map(|b| {
            let (category, retention) = BOX_CATEGORIES[b % BOX_CATEGORIES.len()];
            (
                rng.record_id(),
                ArchiveBox {
                    box_no: format!("{year}-{:02}", b + 1),
                    year,
                    retention,
                    category: category.into(),
                    first_item_no: None,
                    last_item_no: None,
                    status: BoxStatus::Active,
                    status_reason: None,
                },
            )
        })
        .collect();
    let mut items: Vec<(RecordId, ArchiveItem)> = Vec::new();
    let mut folders = vec![0u32; nboxes];
    for (entry_id, entry) in &catalogue {
        let years: &[u32] = if rng.chance(0.3) {
            &[2025, 2026]
        } else {
            &[2026]
        };
        for &y in years {
            let roll = rng.below(100);
            let status = if roll < 60 {
                ArchiveItemStatus::Filed
            } else if roll < 85 {
                ArchiveItemStatus::Collecting
            } else {
                ArchiveItemStatus::Missing
            };
            let b = rng.below(nboxes);
            let filed = status == ArchiveItemStatus::Filed;
            if filed {
                folders[b] += 1;
            }
            items.push((
                rng.record_id(),
                ArchiveItem {
                    catalogue_entry: *entry_id,
                    status,
                    box_id: filed.then_some(boxes[b].0),
                    folder_no: filed.then(|| folders[b].to_string()),
                    title: Some(format!("{}（{y}年度）", entry.title)),
                    document_no: (filed && rng.chance(0.4))
                        .then(|| format!("云教〔{y}〕{}号", 1 + rng.below(60))),
                    doc_date: filed.then(|| random_date(rng, y as i64, y as i64)),
                    pages: filed.then(|| between(rng, 3, 60)),
                    note: match status {
                        ArchiveItemStatus::Collecting => {
                            Some("正在收集，待中心学校提供复印件".into())
                        }
                        ArchiveItemStatus::Missing => Some("尚未收集".into()),
                        _ => None,
                    },
                    status_reason: None,
                },
            ));
        }
    }
    phone.edit(doc, |d, clock| {
        for (id, b) in &boxes {
            d.insert(&clock.tick(), *id, b)?;
        }
        for (id, item) in &items {
            d.insert(&clock.tick(), *id, item)?;
        }
        Ok(())
    })?;
    counts.add::<ArchiveBox>(boxes.len());
    counts.add::<ArchiveItem>(items.len());
    Ok(())
}

/// On the last day, one item being collected is found and filed into the
/// last box; with `all`, every item still open is.
fn finish_archive(
    phone: &mut Device,
    doc: &DocId,
    rng: &mut Rng,
    day: i64,
    all: bool,
) -> Result<(), String> {
    let mut items = phone.read(doc, |d| {
        d.list_where::<ArchiveItem>(|a| {
            matches!(
                a.status,
                ArchiveItemStatus::Collecting | ArchiveItemStatus::Missing
            )
        })
    })?;
    if !all {
        items.retain(|(_, a)| a.status == ArchiveItemStatus::Collecting);
        items.truncate(1);
    }
    let boxes = phone.read(doc, |d| d.list::<ArchiveBox>())?;
    let Some((box_id, _)) = boxes.last() else {
        return Ok(());
    };
    let pages: Vec<u32> = items.iter().map(|_| between(rng, 2, 20)).collect();
    let date = term_date(day);
    phone.edit(doc, |d, clock| {
        for (n, ((id, _), pages)) in items.iter().zip(pages).enumerate() {
            d.update::<ArchiveItem>(&clock.tick(), *id, |a| {
                a.status = ArchiveItemStatus::Filed;
                a.box_id = Some(*box_id);
                a.folder_no = Some((90 + n).to_string());
                a.pages = Some(pages);
                a.doc_date = Some(date.clone());
                a.note = None;
            })?;
        }
        Ok(())
    })?;
    Ok(())
}

/// The document a review section is about.
fn section_doc(school: &SchoolId, section: Section) -> DocId {
    let kind = match section {
        Section::Profile => DocKind::Profile,
        Section::Equipment => DocKind::Equipment,
        Section::Books => DocKind::Books,
        Section::Archive => DocKind::Archive,
        Section::Checklist => DocKind::Checklist,
        Section::Whole => DocKind::Review,
    };
    DocId::school(school, kind).expect("a school document id")
}

/// The five sections a school submits (提交) one by one.
const SECTIONS: [Section; 5] = [
    Section::Profile,
    Section::Equipment,
    Section::Books,
    Section::Archive,
    Section::Checklist,
];

/// The teacher submits the sections that are ready for the township, as
/// the review rules have it: no conflict to resolve in the profile, the
/// stocktake closed, every archive item filed (the books and the
/// checklist, with a plan for every shortfall, always are). Returns the
/// events written.
fn submit_sections(
    phone: &mut Device,
    s: &SchoolPlan,
    school: &SchoolId,
    template: &DocId,
    rng: &mut Rng,
) -> Result<usize, String> {
    let equipment = section_doc(school, Section::Equipment);
    let archive = section_doc(school, Section::Archive);
    let stocktake_open = !phone
        .read(&equipment, |d| {
            d.list_where::<StocktakeSession>(|st| st.status == StocktakeStatus::Open)
        })?
        .is_empty();
    let catalogue = phone.read(template, |d| d.record_ids(&CatalogueEntry::SPEC))?;
    let filed: Vec<RecordId> = phone
        .read(&archive, |d| {
            d.list_where::<ArchiveItem>(|a| a.status == ArchiveItemStatus::Filed)
        })?
        .into_iter()
        .map(|(_, a)| a.catalogue_entry)
        .collect();
    let archive_open = catalogue.iter().any(|c| !filed.contains(c));
    let ready: Vec<Section> = SECTIONS
        .into_iter()
        .filter(|section| match section {
            Section::Profile => s.clerk_edit != Some(ClerkEdit::Classes),
            Section::Equipment => !stocktake_open,
            Section::Archive => !archive_open,
            _ => true,
        })
        .collect();
    let by_user = phone.tokens.user.username.clone();
    let ids: Vec<RecordId> = ready.iter().map(|_| rng.record_id()).collect();
    let review = section_doc(school, Section::Whole);
    phone.edit(&review, |d, clock| {
        for (id, section) in ids.iter().zip(&ready) {
            let ctx = clock.tick();
            d.insert(
                &ctx,
                *id,
                &ReviewEvent {
                    section: *section,
                    action: ReviewAction::Submit,
                    comment: None,
                    frozen_heads: None,
                    by_user: by_user.clone(),
                    at: ctx.now_ms,
                },
            )?;
        }
        Ok(())
    })?;
    Ok(ready.len())
}

/// The school's figures against the county template, as the phone shows
/// them.
fn evaluate(
    phone: &mut Device,
    school: &SchoolId,
    template: &DocId,
) -> Result<SchoolEvaluation, String> {
    let doc = |k| DocId::school(school, k).expect("a school document id");
    fn values<T>(v: Vec<(RecordId, T)>) -> Vec<T> {
        v.into_iter().map(|(_, x)| x).collect()
    }
    let profile: SchoolProfile = phone.read(&doc(DocKind::Profile), |d| d.singleton())?;
    let equipment: Vec<EquipmentItem> =
        values(phone.read(&doc(DocKind::Equipment), |d| d.list::<EquipmentItem>())?);
    let books: Vec<Book> = values(phone.read(&doc(DocKind::Books), |d| d.list::<Book>())?);
    let rows = phone.read(&doc(DocKind::Checklist), |d| d.list::<ChecklistRow>())?;
    let plans = phone.read(&doc(DocKind::Checklist), |d| d.list::<ImprovementPlan>())?;
    let indicators: Vec<IndicatorTemplate> =
        values(phone.read(template, |d| d.list::<IndicatorTemplate>())?);
    let settings: TemplateSettings = phone.read(template, |d| d.singleton())?;
    Ok(evaluate_school(&SchoolInput {
        profile: &profile,
        equipment: &equipment,
        books: &books,
        rows: &rows,
        plans: &plans,
        indicators: &indicators,
        settings: &settings,
    }))
}

/// 达标 / 未达标 with the codes short, over every stage.
fn verdict_words(e: &SchoolEvaluation) -> (String, bool) {
    let mut passes = true;
    let mut short: Vec<String> = Vec::new();
    let mut near: Vec<String> = Vec::new();
    for st in &e.stages {
        match &st.verdict {
            Verdict::Pass { near_miss, .. } => {
                if let Some(b) = near_miss {
                    near.push(b.code.clone());
                }
            }
            Verdict::Fail { not_met, .. } => {
                passes = false;
                short.extend(not_met.iter().map(|b| b.code.clone()));
            }
            Verdict::Undetermined { .. } => {
                passes = false;
                short.push("无法判定".into());
            }
        }
    }
    short.sort();
    short.dedup();
    near.sort();
    near.dedup();
    let words = if passes && near.is_empty() {
        "达标".to_owned()
    } else if passes {
        format!("达标（{} 接近阈值）", near.join("、"))
    } else {
        format!("未达标（{}）", short.join("、"))
    };
    (words, passes)
}

/// R1–R7 and books per student: one row each with the value computed from
/// the records, and an improvement plan for each indicator not met.
fn write_checklist(
    phone: &mut Device,
    s: &SchoolPlan,
    school: &SchoolId,
    template: &DocId,
    rng: &mut Rng,
    counts: &mut Counts,
) -> Result<(), String> {
    let evaluation = evaluate(phone, school, template)?;
    const EVIDENCE: [(&str, &str, &str); 8] = [
        (
            "R1",
            "教职工名册、学历证书复印件",
            "鼓励教师参加学历提升（函授本科），本学期两名教师报名",
        ),
        (
            "R2",
            "县级以上骨干教师认定文件",
            "推荐教师参加县级骨干教师评选，安排送培",
        ),
        (
            "R3",
            "体育、艺术专任教师任课表",
            "申请县教育局调配体育、音乐专任教师，与中心学校共享走教",
        ),
        (
            "R4",
            "校舍面积测绘报告",
            "申报薄弱学校改造项目，改建闲置教室为功能室",
        ),
        (
            "R5",
            "运动场地平面图及测量记录",
            "平整学校后山空地扩建运动场，申请专项资金",
        ),
        (
            "R6",
            "仪器设备台账",
            "申请薄改项目配备科学实验仪器和音体美器材",
        ),
        (
            "R7",
            "多媒体教室配备清单",
            "申请增配交互式触控一体机，改造多媒体教室",
        ),
        (BOOKS_CODE, "图书登记簿", "申请县图书配送，发动社会捐赠图书"),
    ];
    let mut rows: Vec<(RecordId, ChecklistRow)> = Vec::new();
    let mut plans: Vec<(RecordId, ImprovementPlan)> = Vec::new();
    for (code, evidence, action) in EVIDENCE {
        let results: Vec<_> = evaluation
            .stages
            .iter()
            .filter_map(|st| {
                if code == BOOKS_CODE {
                    Some(&st.books)
                } else {
                    st.indicators.iter().find(|i| i.code == code)
                }
            })
            .collect();
        let value = results
            .iter()
            .filter_map(|r| r.value)
            .next()
            .map(|v| (v * 100.0).round() / 100.0);
        let row_id = rng.record_id();
        rows.push((
            row_id,
            ChecklistRow {
                indicator_code: code.into(),
                value,
                value_source: ValueSource::Computed,
                evidence: Some(evidence.into()),
                note: None,
                status: ChecklistRowStatus::Active,
                status_reason: None,
            },
        ));
        if results.iter().any(|r| r.meets == Some(false)) {
            let due = ["2027-03-31", "2027-06-30", "2027-08-31"][rng.below(3)];
            plans.push((
                rng.record_id(),
                ImprovementPlan {
                    row: row_id,
                    action: action.into(),
                    due_on: Some(due.into()),
                    responsible: Some(if s.ty == SchoolType::TeachingPoint {
                        format!("{}（教学点负责人）", s.teacher)
                    } else {
                        format!("{}（校长）", s.head)
                    }),
                    status: if rng.chance(0.3) {
                        PlanStatus::InProgress
                    } else {
                        PlanStatus::Planned
                    },
                    status_reason: None,
                },
            ));
        }
    }
    let doc = DocId::school(school, DocKind::Checklist).expect("a school document id");
    phone.edit(&doc, |d, clock| {
        for (id, row) in &rows {
            d.insert(&clock.tick(), *id, row)?;
        }
        for (id, plan) in &plans {
            d.insert(&clock.tick(), *id, plan)?;
        }
        Ok(())
    })?;
    counts.add::<ChecklistRow>(rows.len());
    counts.add::<ImprovementPlan>(plans.len());
    Ok(())
}

/// A stocktake (盘点) of part of the ledger, with a shortage (盘亏), a
/// damaged item (损坏) and, in larger schools, an item not in the ledger
/// (盘盈).
fn write_stocktake(
    phone: &mut Device,
    s: &SchoolPlan,
    doc: &DocId,
    ledger: &[(RecordId, EquipmentItem)],
    rng: &mut Rng,
    day: i64,
    counts: &mut Counts,
) -> Result<(), String> {
    let session = rng.record_id();
    let lines = ledger.len().min(between(rng, 8, 15) as usize);
    let mut picked: Vec<usize> = (0..ledger.len()).collect();
    shuffle(&mut picked, rng);
    picked.truncate(lines);
    let device = phone.tokens.device_id.to_string();
    let mut count_list: Vec<StocktakeCount> = Vec::new();
    for (k, &i) in picked.iter().enumerate() {
        let (id, item) = &ledger[i];
        let (counted, damaged, note) = match k {
            0 => (
                item.quantity.saturating_sub(1 + rng.below(2) as u32),
                false,
                Some(["借给中心学校未归还", "未找到，待查"][rng.below(2)].to_owned()),
            ),
            1 => (item.quantity, true, Some("外壳破损，需维修".to_owned())),
            _ => (item.quantity, false, None),
        };
        count_list.push(StocktakeCount {
            session,
            item: Some(*id),
            description: None,
            counted_qty: counted,
            damaged,
            note,
            device: device.clone(),
        });
    }
    if s.ty != SchoolType::TeachingPoint {
        count_list.push(StocktakeCount {
            session,
            item: None,
            description: Some("旧地球仪（账外）".into()),
            counted_qty: between(rng, 1, 2),
            damaged: false,
            note: Some("社会捐赠，未入账".into()),
            device: device.clone(),
        });
    }
    let closed = s.review == TownReview::ApproveAll || rng.chance(0.6);
    let date = term_date(day);
    let ids: Vec<RecordId> = count_list.iter().map(|_| rng.record_id()).collect();
    let n = count_list.len();
    phone.edit(doc, |d, clock| {
        d.insert(
            &clock.tick(),
            session,
            &StocktakeSession {
                title: "2026年秋季学期仪器设备盘点".into(),
                room: None,
                started_on: date.clone(),
                status: StocktakeStatus::Open,
                closed_on: None,
            },
        )?;
        for (id, count) in ids.iter().zip(count_list) {
            let line = StocktakeLine::from_count(d, count)?;
            d.insert(&clock.tick(), *id, &line)?;
        }
        if closed {
            d.update::<StocktakeSession>(&clock.tick(), session, |st| {
                st.status = StocktakeStatus::Closed;
                st.closed_on = Some(date.clone());
            })?;
        }
        Ok(())
    })?;
    counts.add::<StocktakeSession>(1);
    counts.add::<StocktakeLine>(n);
    Ok(())
}

/// The township reviews a school's submitted sections on its laptop:
/// approves them (with the section's heads, so later edits show), some of
/// them, or returns one with a comment. A school with every section
/// approved goes to the county as a whole, and the county accepts about
/// half of those (the others wait for it). Returns the events written.
fn review_school(
    client: &Client,
    s: &SchoolPlan,
    town: &mut Device,
    county: &mut Device,
) -> Result<usize, String> {
    if s.review == TownReview::Pending {
        return Ok(0);
    }
    let school = SchoolId::new(s.code.as_str()).expect("a valid school code");
    let review = section_doc(&school, Section::Whole);
    town.sync(client, &DocId::all_for_school(&school))?;
    let submitted: Vec<Section> = town
        .read(&review, |d| d.list::<ReviewEvent>())?
        .into_iter()
        .filter(|(_, e)| e.action == ReviewAction::Submit && e.section != Section::Whole)
        .map(|(_, e)| e.section)
        .collect();
    let mut steps: Vec<(Section, ReviewAction, Option<&str>)> = Vec::new();
    match s.review {
        TownReview::Pending => {}
        TownReview::ApproveAll => {
            steps.extend(submitted.iter().map(|x| (*x, ReviewAction::Approve, None)));
        }
        TownReview::ApproveSome => steps.extend(
            submitted
                .iter()
                .filter(|x| matches!(x, Section::Profile | Section::Books))
                .map(|x| (*x, ReviewAction::Approve, None)),
        ),
        TownReview::Return(section) => {
            let back = if submitted.contains(&section) {
                section
            } else {
                Section::Checklist
            };
            let comment = match back {
                Section::Archive => "档案盒内缺少骨干教师认定文件复印件，请补充后再提交",
                Section::Equipment => "盘点中盘亏的设备请写明去向，损坏设备请附照片",
                _ => "整改计划的完成期限请与中心学校核对后再提交",
            };
            steps.push((back, ReviewAction::Return, Some(comment)));
            if back != Section::Profile && submitted.contains(&Section::Profile) {
                steps.push((Section::Profile, ReviewAction::Approve, None));
            }
        }
    }
    let whole = s.review == TownReview::ApproveAll && submitted.len() == SECTIONS.len();
    if whole {
        steps.push((
            Section::Whole,
            ReviewAction::Submit,
            Some("各部分已审核通过，报县教育局验收"),
        ));
    }
    let mut frozen: Vec<Option<String>> = Vec::new();
    for (section, action, _) in &steps {
        frozen.push(if *action == ReviewAction::Approve {
            let heads = town.read(&section_doc(&school, *section), |d| Ok(d.heads()))?;
            Some(
                heads
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            )
        } else {
            None
        });
    }
    let by_user = town.tokens.user.username.clone();
    let mut rng = Rng::new(s.seed ^ 0x5EED_4EF1);
    let mut n = steps.len();
    town.clock.at(70, 10, 0);
    town.edit(&review, |d, clock| {
        for ((section, action, comment), frozen_heads) in steps.into_iter().zip(frozen) {
            let ctx = clock.tick();
            d.insert(
                &ctx,
                rng.record_id(),
                &ReviewEvent {
                    section,
                    action,
                    comment: comment.map(Into::into),
                    frozen_heads,
                    by_user: by_user.clone(),
                    at: ctx.now_ms,
                },
            )?;
        }
        Ok(())
    })?;
    town.sync(client, std::slice::from_ref(&review))?;

    if whole && (s.index / 4) % 2 == 0 {
        county.clock.at(75, 9, 0);
        county.sync(client, std::slice::from_ref(&review))?;
        let by_user = county.tokens.user.username.clone();
        let id = rng.record_id();
        county.edit(&review, |d, clock| {
            let ctx = clock.tick();
            d.insert(
                &ctx,
                id,
                &ReviewEvent {
                    section: Section::Whole,
                    action: ReviewAction::Accept,
                    comment: Some("验收通过".into()),
                    frozen_heads: None,
                    by_user,
                    at: ctx.now_ms,
                },
            )
        })?;
        county.sync(client, std::slice::from_ref(&review))?;
        n += 1;
    }
    Ok(n)
}

#[allow(clippy::too_many_arguments)]
fn summary(
    plan: &DemoPlan,
    schools: &[SchoolPlan],
    seeded: Vec<DemoSchool>,
    counts: Counts,
    unsynced_devices: Vec<(String, String)>,
    township_edits: Vec<(String, String)>,
    syncs: u64,
    took: Duration,
) -> DemoSummary {
    let mut logins = vec![
        DemoLogin {
            role: "admin".into(),
            username: ADMIN_USER.into(),
            unit: None,
            sees: "accounts, the school list, devices, keys, backups (tpsync admin); no records"
                .into(),
        },
        DemoLogin {
            role: "county".into(),
            username: COUNTY_USER.into(),
            unit: Some(COUNTY_CODE.into()),
            sees: format!(
                "{COUNTY_NAME}: all {} schools and teaching points, and sets the county template",
                schools.len()
            ),
        },
    ];
    let mut townships: Vec<DemoTownship> = TOWNSHIPS
        .iter()
        .map(|(code, name, user)| DemoTownship {
            code: (*code).into(),
            name: (*name).into(),
            username: (*user).into(),
            schools: Vec::new(),
        })
        .collect();
    for (s, d) in schools.iter().zip(seeded) {
        townships[s.township].schools.push(d);
    }
    for t in &townships {
        logins.push(DemoLogin {
            role: "township".into(),
            username: t.username.clone(),
            unit: Some(t.code.clone()),
            sees: format!(
                "{}: its {} schools and teaching points; reviews them",
                t.name,
                t.schools.len()
            ),
        });
    }
    for s in schools {
        logins.push(DemoLogin {
            role: "teacher".into(),
            username: s.username.clone(),
            unit: Some(s.code.clone()),
            sees: format!("{} {} ({})", s.code, s.name, type_zh(s.ty)),
        });
    }
    DemoSummary {
        county_code: COUNTY_CODE.into(),
        county_name: COUNTY_NAME.into(),
        password: plan.password.clone(),
        logins,
        townships,
        records: counts.0,
        unsynced_devices,
        township_edits,
        syncs,
        seconds: took.as_secs_f64(),
    }
}

// ---------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------

/// `tpsync demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// The data directory. A new one is seeded with the demo county; one
    /// that holds it already is served as it is.
    #[arg(long, default_value = "./tpsync-demo")]
    data: PathBuf,
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Schools and teaching points to seed, over 3 townships (6 to 600).
    #[arg(long, default_value_t = DEFAULT_SCHOOLS)]
    schools: usize,
    /// The generator's seed: the same seed records the same county.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
}

/// Runs the server on `--listen`, seeding `--data` first if it is new.
pub fn run(args: DemoArgs) -> Result<(), String> {
    crate::init_logs("text");
    let mut plan = DemoPlan::new(args.schools, args.seed);
    plan.check()?;
    let mut config = ServerConfig::new(&args.data);
    // Seeding signs every account in from this one address.
    config.auth.ip_max_attempts = config.auth.ip_max_attempts.max(plan.sign_ins() as u32 + 30);
    let marker = args.data.join(SEEDED_MARKER);
    let seeded = read_marker(&marker)?;
    let state = tpsync_server::open(config)?;
    let setup_code = state.accounts.setup_code().map_err(|e| e.to_string())?;
    let data = args.data.display().to_string();
    if seeded.is_none() && setup_code.is_none() {
        return Err(format!(
            "{data} holds accounts but no finished demo ({SEEDED_MARKER} is missing): an earlier `tpsync demo` was stopped while seeding, or this is a real server's data. Run the demo on a new directory (or delete this one), or serve it with `tpsync serve --data {data}`"
        ));
    }
    let rt =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let url = format!("http://{addr}");
        println!("tpsync listening on {url}");
        tracing::info!(%addr, data = %data, "serving the demo county");
        let stop = Arc::new(tokio::sync::Notify::new());
        let stop_server = stop.clone();
        let server = tokio::spawn(tpsync_server::run(listener, state, async move {
            tokio::select! {
                _ = crate::shutdown_signal() => {},
                _ = stop_server.notified() => {},
            }
        }));
        let summary = match (seeded, setup_code) {
            (Some(summary), _) => {
                println!("{data} already holds the demo county; serving it as it is");
                let seeded = summary.school_codes().len();
                if seeded != plan.schools {
                    println!(
                        "(it has {seeded} schools: --schools and --seed only apply to a new directory)"
                    );
                }
                summary
            }
            (None, code) => {
                println!(
                    "seeding the demo county {COUNTY_NAME} ({} schools) into {data} through {url} …",
                    plan.schools
                );
                plan.setup_code = code;
                plan.progress = true;
                let seed_url = url.clone();
                let seeded = tokio::task::spawn_blocking(move || seed(&seed_url, &plan))
                    .await
                    .map_err(|e| format!("the seeding thread failed: {e}"))
                    .and_then(|r| r);
                let written = seeded.and_then(|s| write_marker(&marker, &s).map(|()| s));
                match written {
                    Ok(s) => s,
                    Err(e) => {
                        stop.notify_one();
                        let _ = server.await;
                        return Err(format!(
                            "seeding the demo county failed: {e}\n{data} is now only partly seeded; delete it and run `tpsync demo` again"
                        ));
                    }
                }
            }
        };
        print!("{}", summary_text(&summary, &url));
        println!("demo ready: {url}/ui/");
        server
            .await
            .map_err(|e| format!("the server task failed: {e}"))?
            .map_err(|e| e.to_string())
    })
}

fn read_marker(path: &Path) -> Result<Option<DemoSummary>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            format!(
                "{} is not a demo summary ({e}); delete the data directory and run `tpsync demo` again",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn write_marker(path: &Path, summary: &DemoSummary) -> Result<(), String> {
    let json = serde_json::to_vec_pretty(summary).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Display width in a terminal: CJK characters take two columns.
fn width(s: &str) -> usize {
    s.chars()
        .map(|c| match c as u32 {
            0x1100..=0x115F
            | 0x2E80..=0x303E
            | 0x3040..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6 => 2,
            _ => 1,
        })
        .sum()
}

fn pad(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(width(s))))
}

/// What the newcomer reads: the county, the logins, the counts.
fn summary_text(s: &DemoSummary, url: &str) -> String {
    let mut out = String::new();
    let schools = s.school_codes().len();
    let passing: usize = s
        .townships
        .iter()
        .flat_map(|t| &t.schools)
        .filter(|x| x.passes)
        .count();
    let rec = |k: &str| s.records.get(k).copied().unwrap_or(0);
    out.push_str(&format!(
        "\n{} {} — {schools} schools and teaching points in {} townships (seeded in {:.1} s, {} syncs)\n",
        s.county_code,
        s.county_name,
        s.townships.len(),
        s.seconds,
        s.syncs
    ));
    for t in &s.townships {
        out.push_str(&format!("  {} {} ({}):\n", t.code, t.name, t.username));
        for x in &t.schools {
            let parent = x
                .parent_school
                .as_deref()
                .map(|p| format!(", 属 {p}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "    {} {} {:>4} 名学生  {}{parent}\n",
                x.code,
                pad(&x.name, 24),
                x.students,
                x.verdict
            ));
        }
    }
    out.push_str(&format!(
        "records: {} equipment lines, {} stocktake lines, {} book titles, {} archive items in {} boxes, {} checklist rows, {} improvement plans, {} review events\n",
        rec("EquipmentItem"),
        rec("StocktakeLine"),
        rec("Book"),
        rec("ArchiveItem"),
        rec("ArchiveBox"),
        rec("ChecklistRow"),
        rec("ImprovementPlan"),
        rec("ReviewEvent")
    ));
    out.push_str(&format!(
        "indicators R1–R7: {passing} of {schools} schools pass, {} fall short\n",
        schools - passing
    ));
    for (code, what) in &s.township_edits {
        out.push_str(&format!("township correction on {code}: {what}\n"));
    }
    for (user, device) in &s.unsynced_devices {
        out.push_str(&format!(
            "{user} also signed in on {device}, which never synced\n"
        ));
    }
    out.push_str(&format!(
        "\nserver: {url}\ndashboards: {url}/ui/\nlogins (password for every account: {}):\n",
        s.password
    ));
    let rows: Vec<[&str; 4]> = s
        .logins
        .iter()
        .map(|l| {
            [
                l.role.as_str(),
                l.username.as_str(),
                s.password.as_str(),
                l.sees.as_str(),
            ]
        })
        .collect();
    let header = ["role", "username", "password", "sees"];
    let widths: Vec<usize> = (0..3)
        .map(|i| {
            rows.iter()
                .map(|r| width(r[i]))
                .chain([width(header[i])])
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in std::iter::once(&header).chain(rows.iter()) {
        out.push_str(&format!(
            "  {}  {}  {}  {}\n",
            pad(r[0], widths[0]),
            pad(r[1], widths[1]),
            pad(r[2], widths[2]),
            r[3]
        ));
    }
    out.push_str(&format!(
        "sign in from the command line with e.g. `tpsync admin --server {url} --user {ADMIN_USER} --password {} list-devices`\n",
        s.password
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(term_date(0), "2026-09-01");
        assert_eq!(term_date(30), "2026-10-01");
        assert_eq!(term_date_of(term_ms(0, 8, 0)), "2026-09-01");
        assert_eq!(term_date_of(term_ms(0, 0, 0)), "2026-09-01");
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }

    #[test]
    fn the_plan_is_deterministic_and_shaped_as_promised() {
        let plan = DemoPlan::new(24, DEFAULT_SEED);
        let a = plan_schools(&plan);
        let b = plan_schools(&plan);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_eq!(a.len(), 24);
        for t in 0..3 {
            let of = |ty| a.iter().filter(|s| s.township == t && s.ty == ty).count();
            assert_eq!(of(SchoolType::Central), 1);
            assert!((2..=3).contains(&of(SchoolType::Primary)));
            assert_eq!(of(SchoolType::Junior) + of(SchoolType::NineYear), 1);
            assert!((3..=4).contains(&of(SchoolType::TeachingPoint)));
        }
        let nine = a.iter().filter(|s| s.ty == SchoolType::NineYear).count();
        assert_eq!(nine, 1);
        let mut names: Vec<&str> = a.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 24, "school names are unique");
        assert_eq!(a.iter().filter(|s| s.second_device).count(), 3);
        assert_eq!(a.iter().filter(|s| s.clerk_edit.is_some()).count(), 2);
        for s in &a {
            let students: u32 = s.grades.iter().sum();
            match s.ty {
                SchoolType::TeachingPoint => assert!((8..=45).contains(&students)),
                SchoolType::Primary | SchoolType::Central => {
                    assert!((150..=600).contains(&students))
                }
                SchoolType::Junior => assert!((300..=900).contains(&students)),
                SchoolType::NineYear => {
                    assert!(s.grades[..6].iter().sum::<u32>() > 0);
                    assert!(s.grades[6..].iter().sum::<u32>() > 0);
                }
            }
        }
        assert!(DemoPlan::new(5, 1).check().is_err());
    }

    #[test]
    fn display_width_counts_cjk_as_two() {
        assert_eq!(width("云溪镇"), 6);
        assert_eq!(width("a云"), 3);
        assert_eq!(pad("云", 4), "云  ");
    }
}
