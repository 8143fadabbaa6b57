//! The integration tests: one binary, so the crate links once. Tests that need
//! a real peer (smtp-sink, Kannel, Postfix, PostgreSQL) or root are
//! `#[ignore = "needs …: run ops/test"]`: a plain `cargo test` counts them as
//! ignored instead of passing them with nothing sent, and `ops/test` runs them
//! (`-- --include-ignored`), where a missing peer fails the test. The dispatch
//! loop's retry, pause and crash paths also run without peers, through a
//! scripted channel (`scripted`).

mod support;

mod architecture;
mod call_centre;
mod calls;
mod cap;
mod cli_basics;
mod cost;
mod demo;
mod dispatch;
mod dkim;
mod import;
mod import_fuzz;
mod ops_kit;
mod peers_smoke;
mod receipts;
mod replies;
mod reports;
mod scale;
mod schedule;
mod scripted;
mod sms;
mod smtp_proof;
mod store_conformance;
mod store_move;
mod templates;
mod workers;
