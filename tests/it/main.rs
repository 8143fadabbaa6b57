//! The integration tests: one binary, so the crate links once. Tests that need
//! a real peer (smtp-sink, Kannel, PostgreSQL) start it through
//! `support::peers` and skip when it is missing, unless `AVISO_REQUIRE_PEERS=1`
//! (set by `ops/test`), where they fail instead.

mod support;

mod calls;
mod cli_basics;
mod demo;
mod dispatch;
mod import;
mod import_fuzz;
mod peers_smoke;
mod receipts;
mod reports;
mod schedule;
mod sms;
mod smtp_proof;
mod store_conformance;
mod templates;
