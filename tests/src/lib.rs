//! End-to-end test support.
//!
//! - [`server`]: the real `tpsync` binary as a child process
//!   ([`server::TestServer`] on `127.0.0.1:0`; the admin command line).
//! - [`county`]: a small county set up on a fresh server, with every role
//!   signed in.
//! - [`phone`]: simulated devices (sled stores in temporary directories)
//!   that edit offline and sync over HTTP.
//! - [`frames`]: hand-built sync requests (reads, writes, forged pushes).
//! - [`http`]: raw HTTP and checks of problem answers.

// `ClientError` (the client crate's) is large; these helpers pass it on as is.
#![allow(clippy::result_large_err)]

pub mod browser;
pub mod county;
pub mod frames;
pub mod http;
pub mod mobile;
pub mod phone;
pub mod proxy;
pub mod server;

/// How many incremental chunks the `crash-writer` child gathers before it
/// compacts the document. Small, so that compactions happen many times per
/// run and kills land inside them; the crash test uses it to bound how many
/// chunks may be left behind.
pub const CRASH_COMPACT_AFTER: usize = 7;
