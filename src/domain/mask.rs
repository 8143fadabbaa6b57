//! Masking for logs: voters' phones and e-mails are personal data and never appear
//! whole in a log line at info level.

/// A URL without its password (`postgres://aviso:***@db/aviso`), for logs,
/// errors and the provider names kept with each attempt.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// `juan@example.com` → `j***@example.com`.
pub fn mask_email(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

/// `+12135550123` → `+1******0123`: the country is useful in a log, the subscriber is not.
pub fn mask_phone(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..2].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 6))
}

/// Masks whichever kind of address this is.
pub fn mask_address(address: &str) -> String {
    if address.contains('@') {
        mask_email(address)
    } else {
        mask_phone(address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_as_documented() {
        assert_eq!(mask_phone("+12135550123"), "+1******0123");
        assert_eq!(mask_email("j.perez@example.com"), "j***@example.com");
        assert_eq!(mask_address("+34650004957"), "+3******4957");
        assert_eq!(mask_address("ana@example.org"), "a***@example.org");
        assert_eq!(mask_phone("123"), "***");
    }
}
