use std::fmt;

use super::{ChannelKind, EmailAddress, Invalid, PhoneNumber};

/// Where a message goes: an e-mail address or an E.164 phone number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    Email(EmailAddress),
    Phone(PhoneNumber),
}

impl Address {
    /// An e-mail if it has an `@`, otherwise an international phone number.
    pub fn parse(input: &str) -> Result<Address, Invalid> {
        if input.contains('@') {
            EmailAddress::parse(input).map(Address::Email)
        } else {
            PhoneNumber::parse(input, None).map(Address::Phone)
        }
    }

    pub fn channel(&self) -> ChannelKind {
        match self {
            Address::Email(_) => ChannelKind::Email,
            Address::Phone(_) => ChannelKind::Sms,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Address::Email(e) => e.as_str(),
            Address::Phone(p) => p.as_str(),
        }
    }

    pub fn masked(&self) -> String {
        match self {
            Address::Email(e) => e.masked(),
            Address::Phone(p) => p.masked(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
