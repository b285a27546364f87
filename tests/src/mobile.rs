//! The mobile library as the apps get it: `libmobile_ffi` built in this
//! target directory and its generated Python bindings (the same C ABI the
//! Kotlin and Swift bindings call).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

static BINDINGS: OnceLock<PathBuf> = OnceLock::new();

/// A folder holding the Python package `tpsync_mobile` (the generated
/// modules `tpsync` and `tpsync_core`, and the library they load): put it
/// on `PYTHONPATH`. Built once per test process.
pub fn python_bindings() -> &'static Path {
    BINDINGS.get_or_init(|| {
        if let Err(err) = crate::server::build_workspace() {
            panic!("cannot build the mobile library and uniffi-bindgen:\n{err}");
        }
        let dir = crate::server::profile_dir();
        let lib = dir.join(format!(
            "{}mobile_ffi{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ));
        assert!(lib.exists(), "no library at {}", lib.display());
        // In the target folder, replaced on every run (a copy of the
        // library per run in the temp folder filled the disk).
        let root = dir.join("python-bindings");
        let package = root.join("tpsync_mobile");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&package).expect("create the bindings folder");
        let out = Command::new(dir.join("uniffi-bindgen"))
            .arg("generate")
            .arg(&lib)
            .args(["--language", "python", "--no-format", "--out-dir"])
            .arg(&package)
            // It reads each crate's uniffi.toml through `cargo metadata`.
            .current_dir(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .parent()
                    .expect("workspace"),
            )
            .stdin(Stdio::null())
            .output()
            .expect("run uniffi-bindgen");
        assert!(
            out.status.success(),
            "uniffi-bindgen failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::copy(&lib, package.join(lib.file_name().expect("a file name")))
            .expect("copy the library next to the bindings");
        std::fs::write(package.join("__init__.py"), "").expect("write __init__.py");
        root
    })
}

/// `python3` (or `$PYTHON`), which the test machine must have.
pub fn python() -> Command {
    let python = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    let mut cmd = Command::new(python);
    cmd.env("PYTHONPATH", python_bindings())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null());
    cmd
}
