//! `cargo run -p uniffi-bindgen -- generate --library <libmobile_ffi.so> --language kotlin|swift|python --out-dir <dir>`
//!
//! A separate crate so the generator's own dependencies (clap, askama, …)
//! never end up in the library the phones load.

fn main() {
    uniffi::uniffi_bindgen_main()
}
