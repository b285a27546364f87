//! [`County`]: a small county on a fresh server — the administrator, the
//! county, two townships of two schools each (one a 教学点), one user per
//! school, township and county, each signed in on a device.

use sync_core::{CountyId, DocId, SchoolId};
use tpsync_client::{Client, ClientError, NewUser, Role, Tokens};

use crate::server::TestServer;

/// Every account's password in the fixture.
pub const PASSWORD: &str = "青山-correct-horse-42";
pub const ADMIN: &str = "admin";
pub const COUNTY_CODE: &str = "430123";
pub const COUNTY_NAME: &str = "青山县";
/// (code, name).
pub const TOWNSHIPS: [(&str, &str); 2] = [("430123101", "青山镇"), ("430123102", "白水乡")];
/// (学校标识码, name, type, index into [`TOWNSHIPS`]).
pub const SCHOOLS: [(&str, &str, &str, usize); 4] = [
    ("4301230011", "青山镇中心小学", "完全小学", 0),
    ("4301230012", "青山村教学点", "教学点", 0),
    ("4301230021", "白水乡中心小学", "完全小学", 1),
    ("4301230022", "白水乡初级中学", "初中", 1),
];
/// A well-formed school code that is not in the county's list.
pub const UNREGISTERED_SCHOOL: &str = "4301239999";

/// The school list as the county keeps it in Excel: Chinese headers, UTF-8.
pub fn schools_csv() -> String {
    let mut s =
        String::from("学校标识码,学校名称,学校类型,乡镇代码,乡镇名称,一年级,二年级,三年级\n");
    for (i, (code, name, ty, t)) in SCHOOLS.iter().enumerate() {
        let (tcode, tname) = TOWNSHIPS[*t];
        s.push_str(&format!(
            "{code},{name},{ty},{tcode},{tname},{},{},{}\n",
            10 + i,
            9 + i,
            8 + i
        ));
    }
    s
}

pub fn school(i: usize) -> SchoolId {
    SchoolId::new(SCHOOLS[i].0).expect("school code")
}

pub fn county_id() -> CountyId {
    CountyId::new(COUNTY_CODE).expect("county code")
}

/// The county's template document.
pub fn template() -> DocId {
    DocId::template(&county_id())
}

/// The six documents of school `i`.
pub fn school_docs(i: usize) -> Vec<DocId> {
    DocId::all_for_school(&school(i))
}

pub fn teacher_name(i: usize) -> String {
    format!("teacher-{}", SCHOOLS[i].0)
}

pub fn township_name(t: usize) -> String {
    format!("township-{}", TOWNSHIPS[t].0)
}

/// The county user has a Chinese name (usernames may).
pub const COUNTY_USER: &str = "县教育局-张科长";

/// How many sign-ins [`County::setup`] makes (the server allows 30 a
/// minute from one address).
pub const SETUP_LOGINS: usize = 8;

/// The fixture: every account created and signed in once.
pub struct County {
    pub client: Client,
    /// The administrator, signed in on `admin-pc`.
    pub admin: Tokens,
    /// The teacher of school `i`, signed in on `phone-<i>-a`.
    pub teachers: Vec<Tokens>,
    /// The township user of township `t`, signed in on `town-<t>`.
    pub townships: Vec<Tokens>,
    /// The county user, signed in on `county-pc`.
    pub county: Tokens,
}

impl County {
    /// Sets up the county on a server that has no administrator yet.
    pub fn setup(server: &TestServer) -> Self {
        let client = server.client();
        let code = server
            .setup_code
            .as_deref()
            .expect("a fresh server prints a setup code");
        client
            .setup(code, ADMIN, PASSWORD)
            .expect("create the first administrator");
        let mut admin = login(&client, ADMIN, "admin-pc");
        as_admin(&client, &mut admin, |a| {
            client.create_county(a, COUNTY_CODE, COUNTY_NAME)
        })
        .expect("create the county");
        let report = as_admin(&client, &mut admin, |a| {
            client.import_schools(a, schools_csv().as_bytes(), false)
        })
        .expect("import the school list");
        assert_eq!(
            (report.townships_created, report.schools_created),
            (2, 4),
            "{report:?}"
        );
        let mut users: Vec<(String, Role, Option<&str>)> = Vec::new();
        for (i, s) in SCHOOLS.iter().enumerate() {
            users.push((teacher_name(i), Role::Teacher, Some(s.0)));
        }
        for (t, (tcode, _)) in TOWNSHIPS.iter().enumerate() {
            users.push((township_name(t), Role::Township, Some(tcode)));
        }
        users.push((COUNTY_USER.into(), Role::County, Some(COUNTY_CODE)));
        for (username, role, unit) in users {
            let new = NewUser {
                username: username.clone(),
                password: PASSWORD.into(),
                role,
                unit: unit.map(str::to_owned),
            };
            as_admin(&client, &mut admin, |a| client.create_user(a, &new))
                .unwrap_or_else(|e| panic!("create user {username}: {e}"));
        }

        let mut county = County {
            client: client.clone(),
            admin,
            teachers: Vec::new(),
            townships: Vec::new(),
            county: login(&client, COUNTY_USER, "county-pc"),
        };
        for i in 0..SCHOOLS.len() {
            county
                .teachers
                .push(login(&client, &teacher_name(i), &format!("phone-{i}-a")));
        }
        for t in 0..TOWNSHIPS.len() {
            county
                .townships
                .push(login(&client, &township_name(t), &format!("town-{t}")));
        }
        county
    }

    /// Signs `username` in on another device.
    pub fn login(&self, username: &str, device: &str) -> Tokens {
        login(&self.client, username, device)
    }

    /// The same fixture's accounts on another server (a restart on a new
    /// port, a restored backup): a new client, same tokens.
    pub fn with_client(&mut self, client: Client) {
        self.client = client;
    }
}

/// Runs an admin call, refreshing the administrator's access token once if
/// it expired (servers started with a short `--access-ttl-s`).
pub fn as_admin<T>(
    client: &Client,
    admin: &mut Tokens,
    f: impl Fn(&str) -> Result<T, ClientError>,
) -> Result<T, ClientError> {
    match f(&admin.access_token) {
        Err(e) if e.code() == Some("token_expired") => {
            *admin = client.refresh(&admin.refresh_token)?;
            f(&admin.access_token)
        }
        r => r,
    }
}

/// Signs in with the fixture's password.
pub fn login(client: &Client, username: &str, device: &str) -> Tokens {
    client
        .login(
            username,
            PASSWORD,
            &device.parse().expect("device id"),
            Some(device),
        )
        .unwrap_or_else(|e| panic!("login {username} on {device}: {e}"))
}
