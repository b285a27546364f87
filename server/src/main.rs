//! `tpsync`: the county server, its admin command line, and local tools.
//!
//!     tpsync serve --data ./tpsync-data --listen 127.0.0.1:8080
//!     tpsync admin setup --server http://127.0.0.1:8080 --code CODE --username admin --password ...
//!     tpsync admin --user admin --password ... import-schools schools.csv
//!     tpsync restore --from county.backup --data ./restored
//!     tpsync local demo --data ./tpsync-local

mod demo;
mod local;

// jemalloc (tikv-jemallocator, the allocator TiKV ships), returning freed
// memory to the system within a second. Measured on the county benchmark
// (40 teaching points, same run): glibc's malloc kept several times the
// live data resident (an arena per thread of tokio's blocking pool), and
// mimalloc with its defaults kept freed pages as transparent huge pages.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its start: purge dirty pages after 1 s and
/// muzzy ones at once, from a background thread.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tpsync_server::ServerConfig;

#[derive(Parser)]
#[command(
    name = "tpsync",
    version,
    about = "Offline-first records for rural teaching points (教学点): the county server, its administration, local tools"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the county server on an embedded sled database.
    Serve(ServeArgs),
    /// Administer a running server: accounts, schools, devices, keys,
    /// backups.
    Admin(tpsync_client::admin_cli::AdminArgs),
    /// Restore a backup into a new, empty data directory (server stopped).
    Restore {
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        data: PathBuf,
    },
    /// Local stores without a server: a demo, in-process sync, bundles.
    Local(local::LocalArgs),
    /// Run the server with a sample county (seeded over HTTP on first
    /// start): the dashboards filled, logins printed.
    Demo(demo::DemoArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The data directory (one sled database: documents and accounts).
    #[arg(long, env = "TPSYNC_DATA", default_value = "./tpsync-data")]
    data: PathBuf,
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, env = "TPSYNC_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Estimated memory for loaded documents, in MiB.
    #[arg(long, env = "TPSYNC_CACHE_MB", default_value_t = 48)]
    cache_mb: usize,
    /// Largest request body, in KiB.
    #[arg(long, env = "TPSYNC_MAX_BODY_KB", default_value_t = 16 * 1024)]
    max_body_kb: usize,
    /// Longest a request may take, in seconds.
    #[arg(long, env = "TPSYNC_REQUEST_TIMEOUT_S", default_value_t = 60)]
    request_timeout_s: u64,
    /// Access token lifetime, in seconds.
    #[arg(long, env = "TPSYNC_ACCESS_TTL_S", default_value_t = 900)]
    access_ttl_s: u64,
    /// Sign-in attempts allowed per client address per minute.
    #[arg(long, env = "TPSYNC_LOGIN_ATTEMPTS_PER_IP", default_value_t = 30)]
    login_attempts_per_ip: u32,
    /// Largest attachment (photo, scan) accepted, in MiB.
    #[arg(long, env = "TPSYNC_MAX_ATTACHMENT_MB", default_value_t = 20)]
    max_attachment_mb: u64,
    /// Attachment bytes each school may keep on the server, in MiB.
    #[arg(long, env = "TPSYNC_ATTACHMENT_QUOTA_MB", default_value_t = 1024)]
    attachment_quota_mb: u64,
    /// Log format.
    #[arg(long, env = "TPSYNC_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    init_logs(&args.log_format);
    let mut config = ServerConfig::new(&args.data);
    config.cache_bytes = args.cache_mb << 20;
    config.max_body_bytes = args.max_body_kb << 10;
    config.request_timeout = Duration::from_secs(args.request_timeout_s);
    config.auth.access_ttl_s = args.access_ttl_s;
    config.auth.ip_max_attempts = args.login_attempts_per_ip;
    config.blobs.max_blob_bytes = args.max_attachment_mb << 20;
    config.blobs.quota_bytes = args.attachment_quota_mb << 20;
    let state = tpsync_server::open(config)?;
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!("tpsync listening on http://{addr}");
        if let Some(code) = state.accounts.setup_code().map_err(|e| e.to_string())? {
            println!(
                "no administrator yet; create one with: tpsync admin setup --server http://{addr} --code {code} --username admin --password <at least 8 characters>"
            );
        }
        tracing::info!(%addr, data = %args.data.display(), "serving");
        tpsync_server::run(listener, state, shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Serve(a) => serve(a),
        Cmd::Demo(a) => demo::run(a),
        Cmd::Local(a) => return local::run(a),
        Cmd::Restore { from, data } => tpsync_server::backup::restore(&from, &data).map(|n| {
            println!(
                "restored {} entries and {} attachments into {}; start the server with --data {}",
                n.entries,
                n.blobs,
                data.display(),
                data.display()
            )
        }),
        Cmd::Admin(args) => {
            tpsync_client::admin_cli::run(args, &mut std::io::stdout()).map_err(|e| e.to_string())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tpsync: {e}");
            ExitCode::FAILURE
        }
    }
}
