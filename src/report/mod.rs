//! Reports and exports. Everything aviso writes for a spreadsheet goes through
//! [`inert_cell`], because contact and campaign names are typed by other people.

/// Makes a cell that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, or
/// a tab/CR that some programs strip first) read as text, by prefixing `'`
/// (OWASP's advice for CSV injection).
pub fn inert_cell(value: &str) -> String {
    match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{value}"),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_become_text() {
        assert_eq!(inert_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(inert_cell("+1 213"), "'+1 213");
        assert_eq!(inert_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(inert_cell("Rosa"), "Rosa");
        assert_eq!(inert_cell(""), "");
    }
}
