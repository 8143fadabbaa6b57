use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Country, Invalid};

/// A phone number in E.164 form (`+12135550123`), valid according to
/// libphonenumber's metadata: "possible but not valid" numbers are refused.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

/// E.164 allows at most 15 digits; anything longer is not a phone number.
const MAX_DIGITS: usize = 15;

impl PhoneNumber {
    /// One field, as people write it: `+1 (213) 555-0123`, `001 213 555 0123`, or a
    /// national number (`(213) 555-0123`) read in `region`, the contact's country.
    pub fn parse(input: &str, region: Option<Country>) -> Result<PhoneNumber, Invalid> {
        let written = input.trim();
        let digits = digits_of(written)?;
        if written.starts_with('+') {
            return international(written, &digits);
        }
        // `00` is the international prefix of Mexico and most of the world, `011` of
        // the US and Canada: registry staff type both.
        if let Some(rest) = digits.strip_prefix("00") {
            return international(written, rest);
        }
        if let Some(rest) = digits.strip_prefix("011") {
            if matches!(region.map(|c| c.to_string()).as_deref(), Some("US" | "CA")) {
                return international(written, rest);
            }
        }
        let Some(region) = region else {
            return Err(Invalid::new(format!(
                "phone {written:?} has no country code: write it as +<code> <number>"
            )));
        };
        national(written, &digits, region)
    }

    /// Two fields, as the registry captures them: the country calling code (`lada`,
    /// with or without `+`) and the number. An empty code falls back to [`parse`].
    ///
    /// [`parse`]: PhoneNumber::parse
    pub fn from_parts(
        calling_code: &str,
        number: &str,
        region: Option<Country>,
    ) -> Result<PhoneNumber, Invalid> {
        let code = calling_code.trim().trim_start_matches('+');
        let number = number.trim();
        if code.is_empty() || number.starts_with('+') || number.starts_with("00") {
            return PhoneNumber::parse(number, region);
        }
        if code.is_empty() || code.len() > 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Invalid::new(format!(
                "country code {calling_code:?} is not 1 to 3 digits"
            )));
        }
        let digits = digits_of(number)?;
        let written = format!("+{code} {number}");
        match international(&written, &format!("{code}{digits}")) {
            Ok(phone) => Ok(phone),
            // A trunk prefix typed after the country code (`44` + `07911…`).
            Err(err) => match digits.strip_prefix('0') {
                Some(rest) if !rest.is_empty() => {
                    international(&written, &format!("{code}{rest}")).map_err(|_| err)
                }
                _ => Err(err),
            },
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn masked(&self) -> String {
        super::mask_phone(&self.0)
    }

    /// The number as dialled inside its country (`(213) 555-0123`,
    /// `612 34 56 78`), for call-centre staff; E.164 if it cannot be formatted.
    pub fn national(&self) -> String {
        let text = self.0.clone();
        std::panic::catch_unwind(move || {
            phonenumber::parse(None, &text)
                .map(|p| p.format().mode(phonenumber::Mode::National).to_string())
        })
        .ok()
        .and_then(Result::ok)
        .unwrap_or_else(|| self.0.clone())
    }
}

/// Keeps the digits of a number written with the usual punctuation, and refuses
/// letters: a letter O typed for a zero would otherwise be read as a keypad 6.
fn digits_of(written: &str) -> Result<String, Invalid> {
    if written.is_empty() {
        return Err(Invalid::new("phone is empty"));
    }
    let mut digits = String::with_capacity(written.len());
    for (i, c) in written.char_indices() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => {}
            ' ' | '-' | '.' | '(' | ')' | '/' | '\u{a0}' => {}
            c if c.is_alphabetic() => {
                return Err(Invalid::new(format!(
                    "phone {written:?} contains the letter {c:?}{}",
                    if matches!(c, 'O' | 'o') {
                        " (a zero typed as the letter O?)"
                    } else {
                        ""
                    }
                )))
            }
            c => {
                return Err(Invalid::new(format!(
                    "phone {written:?} contains {c:?}, which is not part of a phone number"
                )))
            }
        }
    }
    if digits.len() < 4 {
        return Err(Invalid::new(format!("phone {written:?} is too short")));
    }
    if digits.len() > MAX_DIGITS + 3 {
        return Err(Invalid::new(format!("phone {written:?} is too long")));
    }
    Ok(digits)
}

fn international(written: &str, digits: &str) -> Result<PhoneNumber, Invalid> {
    if digits.len() > MAX_DIGITS {
        return Err(Invalid::new(format!(
            "phone {written:?} has more than {MAX_DIGITS} digits"
        )));
    }
    checked(written, None, &format!("+{digits}"))
}

fn national(written: &str, digits: &str, region: Country) -> Result<PhoneNumber, Invalid> {
    let id = phonenumber::country::Id::from_str(region.code()).map_err(|_| {
        Invalid::new(format!(
            "phone {written:?} has no country code and numbers of {region} cannot be read without one"
        ))
    })?;
    checked(written, Some(id), digits)
}

fn checked(
    written: &str,
    region: Option<phonenumber::country::Id>,
    text: &str,
) -> Result<PhoneNumber, Invalid> {
    // The metadata parser is third-party code fed with untrusted input; a panic in
    // it must become a rejected row, not a crashed import.
    let parsed = std::panic::catch_unwind(|| phonenumber::parse(region, text))
        .map_err(|_| Invalid::new(format!("phone {written:?} could not be read")))?
        .map_err(|_| Invalid::new(format!("phone {written:?} is not a phone number")))?;
    let code = parsed.code().value();
    let national = parsed.national().to_string();
    if !is_valid(code, &national) {
        return Err(Invalid::new(format!(
            "phone {written:?} is not a valid number for +{code} (wrong length or unassigned range)"
        )));
    }
    // What the crate's E.164 formatter writes, without the national-format
    // rules it looks up (and discards) on the way.
    Ok(PhoneNumber(format!("+{code}{national}")))
}

/// `phonenumber::is_valid`, with the same metadata and the same answer (a
/// property test holds it to that), at about half the cost: the crate finds a
/// shared calling code's region (+1: the US, Canada and the Caribbean) by
/// classifying the number, then classifies it again to judge it, each time
/// trying seven rare kinds (premium, pager, UAN…) before fixed line and mobile.
/// Here it is judged once, common kinds first: an import of a million rows
/// spends most of its reading time in these regular expressions.
fn is_valid(code: u16, national: &str) -> bool {
    use phonenumber::metadata::{Metadata, DATABASE};
    let valid_in = |meta: &Metadata| {
        let d = meta.descriptors();
        d.general().is_match(national)
            && [
                d.fixed_line(),
                d.mobile(),
                d.toll_free(),
                d.premium_rate(),
                d.shared_cost(),
                d.voip(),
                d.personal_number(),
                d.pager(),
                d.uan(),
                d.voicemail(),
            ]
            .into_iter()
            .flatten()
            .any(|kind| kind.is_match(national))
    };
    let Some(regions) = DATABASE.region(&code) else {
        return false;
    };
    if let [only] = regions.as_slice() {
        let meta = match *only {
            // Non-geographic codes (+800, +882…).
            "001" => DATABASE.by_code(&code).and_then(|m| m.into_iter().next()),
            region => region
                .parse::<phonenumber::country::Id>()
                .ok()
                .and_then(|_| DATABASE.by_id(region)),
        };
        return meta.is_some_and(valid_in);
    }
    // As the crate picks the region: the first whose leading digits match, or
    // that has none and takes the number.
    for region in regions {
        let Some(meta) = DATABASE.by_id(region) else {
            continue;
        };
        match meta.leading_digits() {
            Some(leading) => {
                if leading.find(national).is_some_and(|m| m.start() == 0) {
                    return valid_in(meta);
                }
            }
            None => {
                if valid_in(meta) {
                    return true;
                }
            }
        }
    }
    false
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Masked, so that a stray `{:?}` in a log line does not leak a voter's number.
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

/// Stored values are already E.164; reading them back re-checks them.
impl TryFrom<String> for PhoneNumber {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        PhoneNumber::parse(&s, None)
    }
}

impl From<PhoneNumber> for String {
    fn from(p: PhoneNumber) -> String {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(code: &str) -> Option<Country> {
        Some(Country::parse(code).unwrap())
    }

    /// (country, lada, national number, E.164): one real-format number per country
    /// of the registry's mix, in the two-field form the registry exports.
    const TWO_FIELDS: &[(&str, &str, &str, &str)] = &[
        ("US", "1", "2135550123", "+12135550123"),
        ("US", "+1", "(310) 555-0102", "+13105550102"),
        ("CA", "1", "4035550158", "+14035550158"),
        ("CA", "1", "514-555-0104", "+15145550104"),
        ("MX", "52", "5512345678", "+525512345678"),
        ("MX", "52", "81 1234 5678", "+528112345678"),
        ("ES", "34", "650004957", "+34650004957"),
        ("DE", "49", "15198113286", "+4915198113286"),
        ("DE", "49", "015198113286", "+4915198113286"),
        ("GB", "44", "7400123456", "+447400123456"),
        ("GB", "44", "07400 123456", "+447400123456"),
        ("FR", "33", "624533909", "+33624533909"),
        ("FR", "33", "06 24 53 39 09", "+33624533909"),
        ("IT", "39", "3854907432", "+393854907432"),
        ("CH", "41", "795124481", "+41795124481"),
        ("CL", "56", "961605344", "+56961605344"),
        ("NL", "31", "612345678", "+31612345678"),
        ("CZ", "420", "605968819", "+420605968819"),
        ("BR", "55", "11964191955", "+5511964191955"),
        ("SE", "46", "704081956", "+46704081956"),
        ("GT", "502", "52476299", "+50252476299"),
        ("AU", "61", "470410358", "+61470410358"),
        ("CO", "57", "3193254490", "+573193254490"),
        ("IE", "353", "895740999", "+353895740999"),
        ("KR", "82", "1079629666", "+821079629666"),
        ("AT", "43", "6647121425", "+436647121425"),
    ];

    #[test]
    fn two_field_form_for_the_registry_countries() {
        for (country, lada, number, want) in TWO_FIELDS {
            let got = PhoneNumber::from_parts(lada, number, c(country))
                .unwrap_or_else(|e| panic!("{country} {lada} {number}: {e}"));
            assert_eq!(got.as_str(), *want, "{country} {lada} {number}");
        }
    }

    #[test]
    fn one_field_form_for_the_registry_countries() {
        for (country, lada, number, want) in TWO_FIELDS {
            let lada = lada.trim_start_matches('+');
            let one = format!("+{lada} {number}");
            let got = PhoneNumber::parse(&one, None).unwrap_or_else(|e| panic!("{one}: {e}"));
            assert_eq!(got.as_str(), *want, "{one}");
            let idd = format!("00 {lada} {number}");
            if !number.starts_with('0') {
                assert_eq!(
                    PhoneNumber::parse(&idd, c(country)).unwrap().as_str(),
                    *want
                );
            }
        }
    }

    #[test]
    fn one_field_forms_people_write() {
        for (input, region, want) in [
            ("+1 (213) 555-0123", None, "+12135550123"),
            ("001 213 555 0123", c("US"), "+12135550123"),
            ("001 3125550166", c("US"), "+13125550166"),
            ("011 34 650 004 957", c("US"), "+34650004957"),
            ("(210) 555-0196", c("US"), "+12105550196"),
            ("+1 310.555.0147", c("US"), "+13105550147"),
            ("650 00 49 57", c("ES"), "+34650004957"),
            ("07400 123456", c("GB"), "+447400123456"),
            ("55 1234 5678", c("MX"), "+525512345678"),
        ] {
            let got = PhoneNumber::parse(input, region).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.as_str(), want, "{input}");
        }
    }

    #[test]
    fn refuses_defects_with_a_reason() {
        for (lada, number, region, why) in [
            ("1", "555012", c("US"), "not a valid number"),
            ("1", "4035O50181", c("CA"), "letter"),
            ("1", "", c("US"), "empty"),
            ("1", "123", c("US"), "too short"),
            ("", "2135550123", None, "no country code"),
            ("1", "0000000000", c("US"), "not a phone number"),
            ("44", "7911585512", c("GB"), "not a valid number"),
            ("52", "12", c("MX"), "too short"),
            ("abc", "2135550123", c("US"), "country code"),
            ("1", "213555012345678901234", c("US"), "too long"),
            ("1", "213#5550123", c("US"), "not part of a phone number"),
        ] {
            let err = PhoneNumber::from_parts(lada, number, region).unwrap_err();
            assert!(err.0.contains(why), "{lada} {number}: {err}");
        }
    }

    #[test]
    fn possible_but_not_valid_is_refused() {
        // Right length for the US, but 555 area code does not exist.
        assert!(PhoneNumber::parse("+1 555 555 0123", None).is_err());
    }

    /// Calling codes of one region and of several (+1, +7, +44, +262, +590…),
    /// and non-geographic ones.
    const CODES: [u16; 24] = [
        1, 7, 20, 33, 34, 39, 44, 47, 49, 52, 55, 61, 81, 86, 212, 262, 290, 358, 500, 590, 599,
        800, 882, 979,
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
        /// The one-pass check agrees with `phonenumber::is_valid` and its E.164
        /// formatter, numbers valid or not.
        #[test]
        fn validity_is_what_the_crate_says(
            code in proptest::sample::select(&CODES[..]),
            national in "[0-9]{3,14}",
            valid_prefix in proptest::sample::select(&["", "2135550", "4165550", "2684", "8765", "7", "9"][..]),
        ) {
            let text = format!("+{code}{valid_prefix}{national}");
            if let Ok(parsed) = phonenumber::parse(None, &text) {
                let national = parsed.national().to_string();
                let ours = is_valid(parsed.code().value(), &national);
                proptest::prop_assert_eq!(ours, phonenumber::is_valid(&parsed), "{}", text);
                if ours {
                    proptest::prop_assert_eq!(
                        format!("+{}{national}", parsed.code().value()),
                        parsed.format().mode(phonenumber::Mode::E164).to_string()
                    );
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics(s in "\\PC{0,40}", lada in "[0-9+ ]{0,5}") {
            let _ = PhoneNumber::parse(&s, Country::parse("US").ok());
            let _ = PhoneNumber::parse(&s, None);
            let _ = PhoneNumber::from_parts(&lada, &s, Country::parse("MX").ok());
        }

        #[test]
        fn digit_strings_never_panic(s in "[0-9+() .-]{0,30}") {
            if let Ok(p) = PhoneNumber::parse(&s, Country::parse("US").ok()) {
                proptest::prop_assert!(p.as_str().starts_with('+'));
                proptest::prop_assert_eq!(PhoneNumber::parse(p.as_str(), None).unwrap(), p);
            }
        }
    }
}
