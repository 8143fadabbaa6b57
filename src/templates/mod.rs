//! Templates.
pub mod sms;
