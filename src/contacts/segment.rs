//! Segment expressions: `entity=OAX,DGO country=US lang=en channel=sms`.
//!
//! Terms are separated by spaces and all must hold; the values of one term are
//! alternatives. The same expression selects contacts for `contacts count` and a
//! campaign's audience, so it is parsed once here; the store turns it into SQL.

use std::fmt;

use crate::domain::{
    ChannelKind, ContactKind, Country, Credential, Entity, Invalid, Language, Modality, Population,
};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Segment {
    pub entities: Vec<Entity>,
    pub countries: Vec<Country>,
    pub languages: Vec<Language>,
    pub channels: Vec<ChannelKind>,
    pub populations: Vec<Population>,
    pub credentials: Vec<Credential>,
    pub modalities: Vec<Modality>,
    pub kinds: Vec<ContactKind>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("segment term {term:?}: {reason}")]
pub struct SegmentError {
    pub term: String,
    pub reason: String,
}

const KEYS: &str = "entity, country, lang, channel, population, credential, modality, kind";

impl Segment {
    pub fn parse(expr: &str) -> Result<Segment, SegmentError> {
        let mut segment = Segment::default();
        for term in expr.split_whitespace() {
            let fail = |reason: String| SegmentError {
                term: term.to_string(),
                reason,
            };
            let (key, values) = term
                .split_once('=')
                .ok_or_else(|| fail(format!("expected key=value, with key one of {KEYS}")))?;
            if values.is_empty() {
                return Err(fail("no value after '='".into()));
            }
            let values: Vec<&str> = values.split(',').collect();
            fn all<T>(
                values: &[&str],
                parse: impl Fn(&str) -> Result<T, Invalid>,
            ) -> Result<Vec<T>, String> {
                values.iter().map(|v| parse(v).map_err(|e| e.0)).collect()
            }
            let result = match key.to_ascii_lowercase().as_str() {
                "entity" | "entidad" => {
                    all(&values, Entity::parse).map(|v| segment.entities.extend(v))
                }
                "country" | "pais" => {
                    all(&values, Country::parse).map(|v| segment.countries.extend(v))
                }
                "lang" | "language" | "idioma" => {
                    all(&values, Language::parse).map(|v| segment.languages.extend(v))
                }
                "channel" | "canal" => {
                    all(&values, ChannelKind::parse).map(|v| segment.channels.extend(v))
                }
                "population" | "poblacion" => {
                    all(&values, Population::parse).map(|v| segment.populations.extend(v))
                }
                "credential" | "tipo_credencial" => {
                    all(&values, Credential::parse).map(|v| segment.credentials.extend(v))
                }
                "modality" | "modalidad" => {
                    all(&values, Modality::parse).map(|v| segment.modalities.extend(v))
                }
                "kind" | "tipo" => {
                    all(&values, ContactKind::parse).map(|v| segment.kinds.extend(v))
                }
                other => Err(format!("unknown key {other:?}: use one of {KEYS}")),
            };
            result.map_err(fail)?;
        }
        Ok(segment)
    }

    pub fn is_empty(&self) -> bool {
        *self == Segment::default()
    }
}

/// The canonical form, stored with a campaign and shown back to people.
impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn term<T: fmt::Display>(out: &mut Vec<String>, key: &str, v: &[T]) {
            if !v.is_empty() {
                let values: Vec<String> = v.iter().map(|x| x.to_string()).collect();
                out.push(format!("{key}={}", values.join(",")));
            }
        }
        let mut out = Vec::new();
        term(&mut out, "kind", &self.kinds);
        term(&mut out, "entity", &self.entities);
        term(&mut out, "country", &self.countries);
        term(&mut out, "lang", &self.languages);
        term(&mut out, "channel", &self.channels);
        term(&mut out, "population", &self.populations);
        term(&mut out, "credential", &self.credentials);
        term(&mut out, "modality", &self.modalities);
        f.write_str(&out.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let s = Segment::parse(
            "entity=OAX,DGO country=US lang=en channel=sms population=primaria credential=CPVE",
        )
        .unwrap();
        assert_eq!(s.entities, vec![Entity::Oax, Entity::Dgo]);
        assert_eq!(s.channels, vec![ChannelKind::Sms]);
        assert_eq!(
            s.to_string(),
            "entity=OAX,DGO country=US lang=en channel=sms population=primaria credential=CPVE"
        );
    }

    #[test]
    fn full_names_and_spanish_keys() {
        let s = Segment::parse("entidad=Oaxaca idioma=ES canal=email").unwrap();
        assert_eq!(s.to_string(), "entity=OAX lang=es channel=email");
        assert!(Segment::parse("").unwrap().is_empty());
    }

    #[test]
    fn bad_terms_are_named() {
        for (expr, term) in [
            ("entity=ZAC", "entity=ZAC"),
            ("country=US colour=red", "colour=red"),
            ("entity", "entity"),
            ("lang=", "lang="),
            ("channel=fax", "channel=fax"),
        ] {
            let err = Segment::parse(expr).unwrap_err();
            assert_eq!(err.term, term, "{expr}: {err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn no_expression_panics(s in "\\PC{0,60}", t in "(entity|country|lang|channel|kind)=[A-Za-z,]{0,12}( [a-z]{1,8}=[A-Za-z,]{0,8}){0,3}") {
            let _ = Segment::parse(&s);
            if let Ok(seg) = Segment::parse(&t) {
                // The canonical form reads back as the same segment.
                proptest::prop_assert_eq!(Segment::parse(&seg.to_string()).unwrap(), seg);
            }
        }
    }
}
