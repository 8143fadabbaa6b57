//! The integration tests: one binary, so the crate links once. Tests that need
//! a real peer (smtp-sink, Kannel, PostgreSQL) start it through
//! `support::peers` and skip when it is missing, unless `AVISO_REQUIRE_PEERS=1`
//! (set by `ops/test`), where they fail instead.

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
mod sms;
mod smtp_proof;
mod store_conformance;
mod store_move;
mod templates;
mod workers;
