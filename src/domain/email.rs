use std::fmt;

use serde::{Deserialize, Serialize};

use super::Invalid;

/// An e-mail address as real mail providers accept it (RFC 5321/5322 dot-atom
/// local part, internationalised domains allowed), trimmed, with the domain in
/// lower case.
///
/// Written by hand rather than with a crate because the crates we tried either
/// accept what providers refuse (quoted local parts, IP literals, `a@b`) or refuse
/// IDN domains, and the rules fit on one screen.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 253;
/// RFC 5321 path limit (256) minus the angle brackets.
const MAX_ADDRESS: usize = 254;

impl EmailAddress {
    pub fn parse(input: &str) -> Result<EmailAddress, Invalid> {
        let s = input.trim();
        if s.is_empty() {
            return Err(Invalid::new("e-mail is empty"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Invalid::new(format!(
                "e-mail {s:?} contains a space or control character"
            )));
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(Invalid::new(format!("e-mail {s:?} has no @")));
        };
        if local.contains('@') {
            return Err(Invalid::new(format!("e-mail {s:?} has more than one @")));
        }
        check_local(s, local)?;
        let domain = check_domain(s, domain)?;
        let address = format!("{local}@{domain}");
        if address.len() > MAX_ADDRESS {
            return Err(Invalid::new(format!(
                "e-mail is longer than {MAX_ADDRESS} characters"
            )));
        }
        Ok(EmailAddress(address))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn masked(&self) -> String {
        super::mask_email(&self.0)
    }
}

fn check_local(whole: &str, local: &str) -> Result<(), Invalid> {
    if local.is_empty() {
        return Err(Invalid::new(format!(
            "e-mail {whole:?} has nothing before @"
        )));
    }
    if local.len() > MAX_LOCAL {
        return Err(Invalid::new(format!(
            "e-mail {whole:?}: the part before @ is longer than {MAX_LOCAL} characters"
        )));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(Invalid::new(format!(
            "e-mail {whole:?}: misplaced dot before @ (leading, trailing or '..')"
        )));
    }
    // RFC 5322 atext. Quoted strings are legal but no provider hands them out.
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-.".contains(c);
    if let Some(bad) = local.chars().find(|&c| !atext(c)) {
        return Err(Invalid::new(format!(
            "e-mail {whole:?}: character {bad:?} is not allowed before @"
        )));
    }
    Ok(())
}

fn check_domain(whole: &str, domain: &str) -> Result<String, Invalid> {
    if domain.is_empty() {
        return Err(Invalid::new(format!(
            "e-mail {whole:?} has no domain after @"
        )));
    }
    let lower = domain.to_lowercase();
    let ascii = idna::domain_to_ascii(&lower)
        .map_err(|_| Invalid::new(format!("e-mail {whole:?}: domain {domain:?} is not valid")))?;
    if ascii.len() > MAX_DOMAIN {
        return Err(Invalid::new(format!(
            "e-mail {whole:?}: domain longer than {MAX_DOMAIN} characters"
        )));
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 {
        return Err(Invalid::new(format!(
            "e-mail {whole:?}: domain {domain:?} has no dot (like example.com)"
        )));
    }
    for label in &labels {
        let ldh = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if label.is_empty()
            || label.len() > 63
            || !ldh
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(Invalid::new(format!(
                "e-mail {whole:?}: domain {domain:?} is not valid"
            )));
        }
    }
    let tld = labels[labels.len() - 1];
    if tld.len() < 2 || tld.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Invalid::new(format!(
            "e-mail {whole:?}: domain {domain:?} does not end in a real top-level domain"
        )));
    }
    Ok(lower)
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Masked, so that a stray `{:?}` in a log line does not leak a voter's address.
impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({})", self.masked())
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        EmailAddress::parse(&s)
    }
}

impl From<EmailAddress> for String {
    fn from(e: EmailAddress) -> String {
        e.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_providers_hand_out() {
        for (input, want) in [
            ("ana@example.com", "ana@example.com"),
            (
                "  Ana.Lopez+vmre@Example.ORG ",
                "Ana.Lopez+vmre@example.org",
            ),
            ("o'brien@example.co.uk", "o'brien@example.co.uk"),
            ("jose@correos.españa.es", "jose@correos.españa.es"),
            ("jose@CORREOS.ESPAÑA.ES", "jose@correos.españa.es"),
            ("user@xn--espaa-rta.es", "user@xn--espaa-rta.es"),
        ] {
            assert_eq!(
                EmailAddress::parse(input).unwrap().as_str(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn refuses_the_fixture_defects_and_rfc_violations() {
        for input in [
            "",
            "   ",
            "ana@",
            "@example.com",
            "a b@example.com",
            "juan@@example.com",
            "sin-arroba.example.com",
            "ana..lopez@example.com",
            ".ana@example.com",
            "ana.@example.com",
            "ana@example",
            "ana@example..com",
            "ana@-example.com",
            "ana@example.123",
            "\"ana lopez\"@example.com",
            "josé@example.com",
            "ana@exa_mple.com",
            "ana@example.com\r\nBcc: x@example.com",
        ] {
            assert!(EmailAddress::parse(input).is_err(), "{input:?} accepted");
        }
    }

    #[test]
    fn length_limits() {
        let local64 = "a".repeat(64);
        assert!(EmailAddress::parse(&format!("{local64}@example.com")).is_ok());
        assert!(EmailAddress::parse(&format!("a{local64}@example.com")).is_err());
        let label = "b".repeat(63);
        assert!(EmailAddress::parse(&format!("a@{label}.com")).is_ok());
        assert!(EmailAddress::parse(&format!("a@b{label}.com")).is_err());
        let long_domain = vec!["c".repeat(60); 5].join(".");
        assert!(EmailAddress::parse(&format!("a@{long_domain}.com")).is_err());
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics_and_accepted_addresses_are_stable(s in "\\PC{0,80}") {
            if let Ok(e) = EmailAddress::parse(&s) {
                proptest::prop_assert!(e.as_str().len() <= MAX_ADDRESS);
                proptest::prop_assert_eq!(EmailAddress::parse(e.as_str()).unwrap(), e);
            }
        }

        #[test]
        fn plausible_addresses_never_panic(s in "[a-zA-Z0-9._%+@ -]{0,40}@[a-zA-Zñ0-9.-]{0,30}") {
            let _ = EmailAddress::parse(&s);
        }
    }

    #[test]
    fn debug_output_is_masked() {
        let e = EmailAddress::parse("juan.perez@example.com").unwrap();
        assert_eq!(format!("{e:?}"), "EmailAddress(j***@example.com)");
    }
}
