//! aviso: bulk e-mail and SMS dispatch for the promotion of the vote of Mexicans
//! living abroad. See `README.md` for the tour and `docs/` for the details.

#![warn(unreachable_pub)]

pub mod calls;
pub mod campaigns;
pub mod channels;
pub mod cli;
pub mod clock;
pub mod config;
pub mod contacts;
pub mod cost;
pub mod dispatch;
pub mod domain;
pub mod files;
pub mod receipts;
pub mod replies;
pub mod report;
pub mod schedule;
pub mod settings;
pub mod store;
pub mod templates;
pub mod tokens;
