//! Segments as SQL: the store turns a parsed [`Segment`] into a condition over
//! a contact row, numbered to follow the statement's own placeholders.

use std::fmt::Display;

use crate::contacts::Segment;

/// The condition over a contact-shaped row aliased `alias`, with placeholders
/// `$first`, `$first+1`…, and the values to bind in order. Works on both
/// backends: only `IN`, `IS NOT NULL` and numbered placeholders.
pub(super) fn segment_sql(segment: &Segment, alias: &str, first: usize) -> (String, Vec<String>) {
    let mut clauses = Vec::new();
    let mut binds = Vec::new();
    let mut any_of = |column: &str, codes: Vec<String>| {
        if codes.is_empty() {
            return;
        }
        let placeholders: Vec<String> = (0..codes.len())
            .map(|i| format!("${}", first + binds.len() + i))
            .collect();
        clauses.push(format!("{alias}.{column} IN ({})", placeholders.join(", ")));
        binds.extend(codes);
    };
    fn codes<T: Display>(v: &[T]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }
    any_of("entity", codes(&segment.entities));
    any_of("country", codes(&segment.countries));
    any_of("language", codes(&segment.languages));
    any_of("population", codes(&segment.populations));
    any_of("credential", codes(&segment.credentials));
    any_of("modality", codes(&segment.modalities));
    any_of("kind", codes(&segment.kinds));
    if !segment.channels.is_empty() {
        let reachable: Vec<String> = segment
            .channels
            .iter()
            .map(|c| format!("{alias}.{} IS NOT NULL", super::address_column(*c)))
            .collect();
        clauses.push(format!("({})", reachable.join(" OR ")));
    }
    if clauses.is_empty() {
        ("1 = 1".to_string(), binds)
    } else {
        (clauses.join(" AND "), binds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_as_sql() {
        let s = Segment::parse(
            "entity=OAX,DGO country=US lang=en channel=sms population=primaria credential=CPVE",
        )
        .unwrap();
        let (sql, binds) = segment_sql(&s, "c", 1);
        assert_eq!(
            sql,
            "c.entity IN ($1, $2) AND c.country IN ($3) AND c.language IN ($4) \
             AND c.population IN ($5) AND c.credential IN ($6) AND (c.phone IS NOT NULL)"
        );
        assert_eq!(binds, ["OAX", "DGO", "US", "en", "primaria", "CPVE"]);
    }

    #[test]
    fn placeholders_start_where_asked() {
        let (sql, _) = segment_sql(&Segment::parse("entity=AGS").unwrap(), "m", 3);
        assert_eq!(sql, "m.entity IN ($3)");
    }

    #[test]
    fn an_empty_segment_is_the_whole_list() {
        assert_eq!(
            segment_sql(&Segment::default(), "c", 1),
            ("1 = 1".into(), vec![])
        );
    }
}
