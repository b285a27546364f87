//! `tpsync admin …`: the administrator's commands over HTTP, as a library
//! the server's binary mounts (`Admin(AdminArgs)` in its subcommands, then
//! [`run`]). `restore` is not here: it works on a stopped server's data
//! directory, so the server binary does it offline.
//!
//! Every command but `setup` signs in as the administrator (`--user`,
//! `--password`, or `TPSYNC_ADMIN_USER` / `TPSYNC_ADMIN_PASSWORD`), runs,
//! and signs out. The device id is `admin-cli-<host name>`, stable per
//! machine. `--server` and `--user` may stand before or after the command;
//! the administrator's `--password` too, except for `setup` and
//! `create-user`, whose own `--password` is the new account's (give the
//! administrator's before the command or in `TPSYNC_ADMIN_PASSWORD`).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sync_core::DeviceId;
use unicode_width::UnicodeWidthStr;

use crate::error::ClientError;
use crate::http::{Client, ClientConfig};
use crate::types::{NewUser, Role, SchoolImportReport};

/// `tpsync admin`: talks to a running server.
#[derive(clap::Args, Clone, Debug)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub cmd: AdminCommand,
    /// The server's address.
    #[arg(
        long,
        global = true,
        env = "TPSYNC_SERVER",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub server: String,
    /// The administrator to sign in as.
    #[arg(long, global = true, env = "TPSYNC_ADMIN_USER", value_name = "NAME")]
    pub user: Option<String>,
    /// The administrator's password (prefer TPSYNC_ADMIN_PASSWORD: other
    /// users of the machine can read command lines).
    #[arg(
        long,
        env = "TPSYNC_ADMIN_PASSWORD",
        hide_env_values = true,
        value_name = "PW"
    )]
    pub password: Option<String>,
}

/// The administrator's password given after the command.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct AdminPassword {
    /// The administrator's password (or TPSYNC_ADMIN_PASSWORD).
    #[arg(long = "password", value_name = "PW")]
    pub password: Option<String>,
}

#[derive(clap::Subcommand, Clone, Debug, PartialEq, Eq)]
pub enum AdminCommand {
    /// Create the first administrator (once, no sign-in needed).
    Setup {
        /// The one-time setup code the server prints at start.
        #[arg(long)]
        code: String,
        #[arg(long)]
        username: String,
        /// The new administrator's password.
        #[arg(long)]
        password: String,
    },
    /// Create a county.
    CreateCounty {
        /// The county's administrative division code.
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        admin: AdminPassword,
    },
    /// Import townships and schools from a CSV file (all or nothing).
    ImportSchools {
        file: PathBuf,
        /// Only check the file; import nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        admin: AdminPassword,
    },
    /// List the schools.
    ListSchools {
        #[command(flatten)]
        admin: AdminPassword,
    },
    /// Create an account.
    CreateUser {
        #[arg(long)]
        username: String,
        /// The new account's password.
        #[arg(long)]
        password: String,
        #[arg(long, value_enum)]
        role: Role,
        /// The school, township or county code (none for an admin).
        #[arg(long)]
        unit: Option<String>,
    },
    /// List the accounts.
    ListUsers {
        #[command(flatten)]
        admin: AdminPassword,
    },
    /// List the devices that signed in.
    ListDevices {
        #[command(flatten)]
        admin: AdminPassword,
    },
    /// Revoke a device: it can no longer refresh its sign-in.
    RevokeDevice {
        id: String,
        #[command(flatten)]
        admin: AdminPassword,
    },
    /// Start signing tokens with a new key.
    RotateKey {
        #[command(flatten)]
        admin: AdminPassword,
    },
    /// Download a backup of the server's data.
    Backup {
        /// The file to write (replaced only once the backup is complete).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        admin: AdminPassword,
    },
}

impl AdminCommand {
    /// The administrator's password given after the command, if this
    /// command takes one there.
    fn admin_password(&self) -> Option<&str> {
        match self {
            AdminCommand::Setup { .. } | AdminCommand::CreateUser { .. } => None,
            AdminCommand::CreateCounty { admin, .. }
            | AdminCommand::ImportSchools { admin, .. }
            | AdminCommand::ListSchools { admin }
            | AdminCommand::ListUsers { admin }
            | AdminCommand::ListDevices { admin }
            | AdminCommand::RevokeDevice { admin, .. }
            | AdminCommand::RotateKey { admin }
            | AdminCommand::Backup { admin, .. } => admin.password.as_deref(),
        }
    }
}

/// Runs one admin command, printing human text to `out`. Errors are
/// returned (the binary prints them and exits 1); an import's row errors
/// are printed before its error is returned.
pub fn run(args: AdminArgs, out: &mut dyn Write) -> Result<(), ClientError> {
    let client = Client::new(&args.server, ClientConfig::default())?;
    if let AdminCommand::Setup {
        code,
        username,
        password,
    } = &args.cmd
    {
        let user = client.setup(code, username, password)?;
        say(
            out,
            format_args!(
                "Administrator {} created. Run admin commands with --user {} (and the password in TPSYNC_ADMIN_PASSWORD).",
                user.username, user.username
            ),
        )?;
        return Ok(());
    }
    let user = args.user.as_deref().ok_or_else(|| {
        ClientError::InvalidInput(
            "no administrator given: pass --user NAME or set TPSYNC_ADMIN_USER".into(),
        )
    })?;
    let password = args
        .cmd
        .admin_password()
        .or(args.password.as_deref())
        .ok_or_else(|| {
            ClientError::InvalidInput(
                "no administrator password given: set TPSYNC_ADMIN_PASSWORD or pass --password"
                    .into(),
            )
        })?;
    let tokens = client.login(user, password, &admin_device_id(user), Some("tpsync admin"))?;
    let result = run_signed_in(&client, &tokens.access_token, &args.cmd, out);
    // Leave no refresh token behind; a failure here changes nothing.
    let _ = client.logout(&tokens.access_token);
    result
}

fn run_signed_in(
    client: &Client,
    access: &str,
    cmd: &AdminCommand,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    match cmd {
        AdminCommand::Setup { .. } => unreachable!("handled before signing in"),
        AdminCommand::CreateCounty { code, name, .. } => {
            let county = client.create_county(access, code, name)?;
            say(
                out,
                format_args!(
                    "County {} ({}) created.",
                    county.name.as_deref().unwrap_or(name),
                    county.code.as_deref().unwrap_or(code)
                ),
            )
        }
        AdminCommand::ImportSchools { file, dry_run, .. } => {
            let csv = std::fs::read(file)
                .map_err(|e| ClientError::io(format!("cannot read {}", file.display()), e))?;
            match client.import_schools(access, &csv, *dry_run) {
                Ok(report) if report.errors.is_empty() => {
                    let counts = format!(
                        "{} township(s) created, {} township(s) renamed, {} school(s) created, {} school(s) updated",
                        report.townships_created,
                        report.townships_updated,
                        report.schools_created,
                        report.schools_updated
                    );
                    if *dry_run {
                        say(
                            out,
                            format_args!("Dry run: the file is valid and nothing was imported. Importing it would give: {counts}."),
                        )
                    } else {
                        say(out, format_args!("Imported: {counts}."))
                    }
                }
                Ok(report) => {
                    print_row_errors(out, &report)?;
                    Err(ClientError::InvalidInput(format!(
                        "{} has {} error(s); nothing was imported",
                        file.display(),
                        report.errors.len()
                    )))
                }
                Err(e) => {
                    if let Some(report) = e.import_report() {
                        print_row_errors(out, &report)?;
                    }
                    Err(e)
                }
            }
        }
        AdminCommand::ListSchools { .. } => {
            let schools = client.schools(access)?;
            let rows = schools
                .into_iter()
                .map(|s| {
                    let students: Option<u64> =
                        s.enrollment.map(|e| e.iter().map(|n| u64::from(*n)).sum());
                    let mut row = vec![
                        col("code", s.code),
                        col("name", s.name),
                        col("type", s.school_type),
                        col("township", s.township),
                        col("students", students),
                    ];
                    row.extend(s.extra);
                    row
                })
                .collect();
            print_table(
                out,
                rows,
                "No schools yet; import them with import-schools.",
            )
        }
        AdminCommand::CreateUser {
            username,
            password,
            role,
            unit,
        } => {
            let user = client.create_user(
                access,
                &NewUser {
                    username: username.clone(),
                    password: password.clone(),
                    role: *role,
                    unit: unit.clone(),
                },
            )?;
            let unit = user
                .unit
                .as_deref()
                .map(|u| format!(" of {u}"))
                .unwrap_or_default();
            say(
                out,
                format_args!(
                    "User {} ({}{unit}) created, id {}.",
                    user.username, user.role, user.id
                ),
            )
        }
        AdminCommand::ListUsers { .. } => {
            let users = client.users(access)?;
            let rows = users
                .into_iter()
                .map(|u| {
                    vec![
                        col("id", Some(u.id)),
                        col("username", Some(u.username)),
                        col("role", Some(u.role.as_str())),
                        col("unit", u.unit),
                        col("created_ms", u.created_ms),
                        col("disabled", Some(u.disabled)),
                    ]
                })
                .collect();
            print_table(out, rows, "No users yet.")
        }
        AdminCommand::ListDevices { .. } => {
            let devices = client.devices(access)?;
            let rows = devices
                .into_iter()
                .map(|d| {
                    let mut row = vec![
                        col("id", d.id),
                        col("name", d.name),
                        col("user", d.user),
                        col("last_seen_ms", d.last_seen_ms),
                        col("revoked_ms", d.revoked_ms),
                    ];
                    row.extend(d.extra);
                    row
                })
                .collect();
            print_table(out, rows, "No devices have signed in yet.")
        }
        AdminCommand::RevokeDevice { id, .. } => {
            client.revoke_device(access, id)?;
            say(
                out,
                format_args!("Device {id} revoked: it must sign in again to sync."),
            )
        }
        AdminCommand::RotateKey { .. } => {
            let key = client.rotate_key(access)?;
            say(
                out,
                format_args!(
                    "New signing key {} (created {}).",
                    key.kid,
                    format_ms(key.created_ms)
                ),
            )
        }
        AdminCommand::Backup { out: path, .. } => {
            let size = backup_to_file(client, access, path)?;
            say(
                out,
                format_args!(
                    "Backup written to {} ({}).",
                    path.display(),
                    human_size(size)
                ),
            )
        }
    }
}

/// Writes the backup to a temporary file beside `path`, flushes it to
/// disk, then renames it over `path`: `path` is never a partial backup.
fn backup_to_file(client: &Client, access: &str, path: &Path) -> Result<u64, ClientError> {
    let name = path.file_name().ok_or_else(|| {
        ClientError::InvalidInput(format!("--out {} does not name a file", path.display()))
    })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(|e| ClientError::io(format!("cannot create a file in {}", dir.display()), e))?;
    // On any error below, dropping `tmp` deletes the partial file.
    let size = client.backup(access, tmp.as_file_mut())?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| ClientError::io(format!("cannot write {}", path.display()), e))?;
    tmp.persist(path)
        .map_err(|e| ClientError::io(format!("cannot write {}", path.display()), e.error))?;
    // Make the rename itself durable (best effort; not possible everywhere).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(size)
}

fn print_row_errors(out: &mut dyn Write, report: &SchoolImportReport) -> Result<(), ClientError> {
    say(
        out,
        format_args!(
            "The file has {} error(s); nothing was imported:",
            report.errors.len()
        ),
    )?;
    for e in &report.errors {
        say(out, format_args!("  {e}"))?;
    }
    Ok(())
}

fn say(out: &mut dyn Write, line: std::fmt::Arguments<'_>) -> Result<(), ClientError> {
    writeln!(out, "{line}").map_err(|e| ClientError::io("cannot write the output", e))
}

/// One row of a table: (column, value) in display order.
type Row = Vec<(String, Value)>;

fn col(name: &str, v: Option<impl Into<Value>>) -> (String, Value) {
    (name.to_owned(), v.map(Into::into).unwrap_or(Value::Null))
}

/// Prints rows as a table: the first row's columns first, then any other
/// column in order of appearance. Column widths count a Chinese character
/// as two.
fn print_table(out: &mut dyn Write, rows: Vec<Row>, empty: &str) -> Result<(), ClientError> {
    if rows.is_empty() {
        return say(out, format_args!("{empty}"));
    }
    let mut columns: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    for row in &rows {
        for (k, _) in row {
            if seen.insert(k.clone()) {
                columns.push(k.clone());
            }
        }
    }
    let header: Vec<String> = columns
        .iter()
        .map(|c| c.trim_end_matches("_ms").replace('_', " ").to_uppercase())
        .collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| {
                    let v = row.iter().find(|(k, _)| k == c).map(|(_, v)| v);
                    cell(c, v.unwrap_or(&Value::Null))
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            std::iter::once(&header[i])
                .chain(cells.iter().map(|r| &r[i]))
                .map(|s| s.width())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for line in std::iter::once(&header).chain(&cells) {
        let mut text = String::new();
        for (i, value) in line.iter().enumerate() {
            text.push_str(value);
            if i + 1 < line.len() {
                text.push_str(&" ".repeat(widths[i] - value.width() + 2));
            }
        }
        say(out, format_args!("{text}"))?;
    }
    say(out, format_args!("({} in all)", rows.len()))
}

fn cell(column: &str, v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        Value::String(s) => s.replace(['\n', '\r', '\t'], " "),
        Value::Number(n) if column.ends_with("_ms") => {
            n.as_i64().map(format_ms).unwrap_or_else(|| n.to_string())
        }
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// Milliseconds since 1970 as China Standard Time, `2025-03-01 14:05 +08:00`.
fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000) + 8 * 3600;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} +08:00",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// The device id the admin command line signs in with: stable per machine
/// and user (a device belongs to one user, so two administrators on one
/// machine, or a teacher trying the admin commands, each get their own).
/// A hash of the host name and the username keeps it short and ASCII.
pub fn admin_device_id(user: &str) -> DeviceId {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let mut key = host.trim().as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(user.trim().to_lowercase().as_bytes());
    DeviceId::new(format!("admin-cli-{:016x}", fnv1a(&key)))
        .expect("a valid device id: 26 ASCII characters")
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        cmd: Top,
    }

    #[derive(clap::Subcommand, Debug)]
    enum Top {
        Admin(AdminArgs),
    }

    fn parse(args: &[&str]) -> AdminArgs {
        let Top::Admin(a) =
            Cli::try_parse_from(std::iter::once("tpsync").chain(args.iter().copied()))
                .unwrap_or_else(|e| panic!("{args:?}: {e}"))
                .cmd;
        a
    }

    #[test]
    fn the_command_line_parses_as_the_contract_writes_it() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let a = parse(&[
            "admin",
            "list-users",
            "--server",
            "http://10.0.0.1:8080",
            "--user",
            "root",
            "--password",
            "pw",
        ]);
        assert_eq!(a.server, "http://10.0.0.1:8080");
        assert_eq!(a.user.as_deref(), Some("root"));
        assert_eq!(a.cmd.admin_password(), Some("pw"));
        let a = parse(&[
            "admin",
            "--server",
            "http://h:1",
            "--user",
            "root",
            "--password",
            "pw",
            "create-user",
            "--username",
            "li",
            "--password",
            "new",
            "--role",
            "teacher",
            "--unit",
            "4301230001",
        ]);
        assert_eq!(a.password.as_deref(), Some("pw"));
        assert_eq!(
            a.cmd,
            AdminCommand::CreateUser {
                username: "li".into(),
                password: "new".into(),
                role: Role::Teacher,
                unit: Some("4301230001".into())
            }
        );
        let a = parse(&["admin", "import-schools", "s.csv", "--dry-run"]);
        assert!(matches!(
            a.cmd,
            AdminCommand::ImportSchools { dry_run: true, .. }
        ));
        let a = parse(&[
            "admin",
            "setup",
            "--code",
            "430123",
            "--username",
            "admin",
            "--password",
            "x",
        ]);
        assert!(matches!(a.cmd, AdminCommand::Setup { .. }));
        let a = parse(&["admin", "backup", "--out", "b.tpsync"]);
        assert!(matches!(a.cmd, AdminCommand::Backup { .. }));
        let a = parse(&["admin", "revoke-device", "phone-1"]);
        assert!(matches!(a.cmd, AdminCommand::RevokeDevice { ref id, .. } if id == "phone-1"));
    }

    #[test]
    fn tables_align_chinese_text() {
        let row = |pairs: &[(&str, Value)]| -> Row {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        };
        let rows = vec![
            row(&[
                ("code", "4301230001".into()),
                ("name", "一小".into()),
                ("created_ms", 0.into()),
            ]),
            row(&[
                ("code", "4301230002".into()),
                ("name", "Hope".into()),
                ("revoked", true.into()),
            ]),
        ];
        let mut out = Vec::new();
        print_table(&mut out, rows, "none").unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "CODE        NAME  CREATED                  REVOKED"
        );
        assert_eq!(lines[1], "4301230001  一小  1970-01-01 08:00 +08:00  -");
        assert_eq!(lines[2], "4301230002  Hope  -                        yes");
        assert_eq!(lines[3], "(2 in all)");
        let mut out = Vec::new();
        print_table(&mut out, vec![], "No users yet.").unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "No users yet.\n");
    }

    #[test]
    fn dates_sizes_and_device_ids() {
        assert_eq!(format_ms(1_740_808_800_000), "2025-03-01 14:00 +08:00");
        assert_eq!(format_ms(-1), "1970-01-01 07:59 +08:00");
        assert_eq!(human_size(10), "10 bytes");
        assert_eq!(human_size(1536), "1.5 KB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MB");
        let id = admin_device_id("admin");
        assert!(id.as_str().starts_with("admin-cli-"), "{id}");
        assert_eq!(id, admin_device_id("admin"), "stable");
        assert_ne!(id, admin_device_id("li"), "one device per user");
    }
}
