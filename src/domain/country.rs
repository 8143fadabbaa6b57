use std::fmt;

use serde::{Deserialize, Serialize};

use super::{fold, Invalid};

/// Every officially assigned ISO 3166-1 alpha-2 code. Written out because the
/// list is short, stable and the only thing we need from a country crate.
const ISO_3166_ALPHA2: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// Names and codes people write in registry exports for the countries where most
/// contacts live; anything else must be an ISO code.
const ALIASES: &[(&str, &str)] = &[
    ("usa", "US"),
    ("eua", "US"),
    ("eeuu", "US"),
    ("ee.uu.", "US"),
    ("ee uu", "US"),
    ("estados unidos", "US"),
    ("estados unidos de america", "US"),
    ("united states", "US"),
    ("united states of america", "US"),
    ("can", "CA"),
    ("canada", "CA"),
    ("esp", "ES"),
    ("espana", "ES"),
    ("spain", "ES"),
    ("deu", "DE"),
    ("alemania", "DE"),
    ("germany", "DE"),
    ("fra", "FR"),
    ("francia", "FR"),
    ("france", "FR"),
    ("gbr", "GB"),
    ("uk", "GB"),
    ("reino unido", "GB"),
    ("united kingdom", "GB"),
    ("mex", "MX"),
    ("mexico", "MX"),
];

/// A country as an ISO 3166-1 alpha-2 code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Country([u8; 2]);

impl Country {
    pub fn parse(input: &str) -> Result<Country, Invalid> {
        // The common case, a code as most exports write it, needs no folding
        // (an import parses a million of these).
        if let Some(country) = assigned_code(input.trim()) {
            return Ok(country);
        }
        let folded = fold(input);
        if let Some((_, code)) = ALIASES.iter().find(|(alias, _)| *alias == folded) {
            return Ok(Country::known(code));
        }
        if let Some(country) = assigned_code(&folded) {
            return Ok(country);
        }
        if folded.is_empty() {
            return Err(Invalid::new("country is empty"));
        }
        Err(Invalid::new(format!(
            "unknown country {:?}: expected an ISO 3166 code such as US, CA, ES",
            input.trim()
        )))
    }

    fn known(code: &str) -> Country {
        let b = code.as_bytes();
        Country([b[0], b[1]])
    }

    pub fn code(&self) -> &str {
        // Only ever built from ASCII letters.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

/// `text` as an assigned code, in any case: two letters and nothing else.
fn assigned_code(text: &str) -> Option<Country> {
    let [a, b] = *text.as_bytes() else {
        return None;
    };
    let code = [a.to_ascii_uppercase(), b.to_ascii_uppercase()];
    is_assigned(code).then_some(Country(code))
}

/// Whether `code` is in [`ISO_3166_ALPHA2`], which is sorted with a code every
/// three bytes: a binary search without splitting or allocating.
fn is_assigned(code: [u8; 2]) -> bool {
    let table = ISO_3166_ALPHA2.as_bytes();
    let (mut low, mut high) = (0, table.len().div_ceil(3));
    while low < high {
        let mid = (low + high) / 2;
        match [table[mid * 3], table[mid * 3 + 1]].cmp(&code) {
            std::cmp::Ordering::Less => low = mid + 1,
            std::cmp::Ordering::Greater => high = mid,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::str::FromStr for Country {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Country::parse(s)
    }
}

impl TryFrom<String> for Country {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Country::parse(&s)
    }
}

impl From<Country> for String {
    fn from(c: Country) -> String {
        c.code().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_code_is_found_and_nothing_else() {
        let codes: Vec<&str> = ISO_3166_ALPHA2.split(' ').collect();
        assert!(
            codes.windows(2).all(|w| w[0] < w[1]),
            "the table must stay sorted"
        );
        for code in &codes {
            let b = code.as_bytes();
            assert!(is_assigned([b[0], b[1]]), "{code}");
        }
        for a in b'A'..=b'Z' {
            for b in b'A'..=b'Z' {
                let code = String::from_utf8(vec![a, b]).unwrap();
                assert_eq!(is_assigned([a, b]), codes.contains(&code.as_str()));
            }
        }
    }

    #[test]
    fn codes_and_common_names() {
        assert_eq!(Country::parse("us").unwrap().code(), "US");
        assert_eq!(Country::parse("USA").unwrap().code(), "US");
        assert_eq!(Country::parse("España").unwrap().code(), "ES");
        assert_eq!(Country::parse(" de ").unwrap().code(), "DE");
        assert!(Country::parse("XX").is_err());
        assert!(Country::parse("").is_err());
        assert!(Country::parse("Ünited").is_err());
    }

    #[test]
    fn the_list_is_complete_iso() {
        assert_eq!(ISO_3166_ALPHA2.split(' ').count(), 249);
    }
}
