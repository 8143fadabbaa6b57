use super::*;

#[test]
fn a_probe_splits_at_its_markers_and_tells_escaped_ones() {
    let text = format!(
        "Hola {}, <a href=\"{}\">x</a>",
        Slot::FirstName.marker(),
        Slot::Unsubscribe.marker().replace('&', "&amp;")
    );
    let skeleton = Skeleton::parse(&text).unwrap();
    assert_eq!(
        skeleton.pieces,
        vec![
            Piece::Text("Hola ".into()),
            Piece::Slot {
                slot: Slot::FirstName,
                escaped: false
            },
            Piece::Text(", <a href=\"".into()),
            Piece::Slot {
                slot: Slot::Unsubscribe,
                escaped: true
            },
            Piece::Text("\">x</a>".into()),
        ]
    );
    let r = Recipient {
        first_name: Some("Zoë & Ana".into()),
        ..Recipient::default()
    };
    assert_eq!(
        skeleton.fill(&r, "https://x/u?a=1&b=2"),
        "Hola Zoë & Ana, <a href=\"https://x/u?a&#x3D;1&amp;b&#x3D;2\">x</a>"
    );
}

#[test]
fn a_stray_marker_character_means_no_skeleton() {
    assert!(Skeleton::parse("a \u{E000} b").is_none());
    assert!(Skeleton::parse("a \u{E001} b").is_none());
    assert!(Skeleton::parse("a \u{E000}9&\u{E001} b").is_none());
}

/// The fields of `Recipient` that `contact_field` gives no role, read from
/// the two sources: the destructuring there must name each field, and a match
/// arm must say whether it is per recipient or part of the class.
fn fields_without_role(recipient_rs: &str, skeleton_rs: &str) -> Vec<String> {
    use quote::ToTokens;
    let recipient = syn::parse_file(recipient_rs).unwrap();
    let fields: Vec<String> = recipient
        .items
        .iter()
        .find_map(|item| match item {
            syn::Item::Struct(s) if s.ident == "Recipient" => Some(
                s.fields
                    .iter()
                    .map(|f| f.ident.as_ref().unwrap().to_string())
                    .collect(),
            ),
            _ => None,
        })
        .expect("struct Recipient");
    let skeleton = syn::parse_file(skeleton_rs).unwrap();
    let roles = skeleton
        .items
        .iter()
        .find_map(|item| match item {
            syn::Item::Fn(f) if f.sig.ident == "contact_field" => {
                Some(f.block.to_token_stream().to_string())
            }
            _ => None,
        })
        .expect("fn contact_field");
    fields
        .into_iter()
        .filter(|f| !roles.contains(&format!("{f} : _")) || !roles.contains(&format!("\"{f}\" =>")))
        .collect()
}

#[test]
fn every_field_of_a_recipient_has_a_role_in_the_class_cache() {
    let recipient_rs = include_str!("../recipient.rs");
    let skeleton_rs = include_str!("../skeleton.rs");
    assert_eq!(
        fields_without_role(recipient_rs, skeleton_rs),
        Vec::<String>::new()
    );
    // A field added to `Recipient` (here a phone) is caught until it is
    // given a role, as the compiler also refuses `contact_field` then.
    let added = recipient_rs.replacen(
        "pub struct Recipient {",
        "pub struct Recipient {\n    pub phone: Option<String>,",
        1,
    );
    assert_ne!(added, recipient_rs);
    assert_eq!(fields_without_role(&added, skeleton_rs), vec!["phone"]);
}
