//! Whatever bytes a file holds, the importer either refuses it with a message
//! or accounts for every row: it never panics and never loses a row.

use proptest::prelude::*;

use aviso::contacts::{import_file, ImportError, ImportOptions};

const HEADER: &str = "id_contacto,nombre,apellidos,entidad,pais,email,lada,telefono,idioma\n";

fn row() -> impl Strategy<Value = String> {
    let field = "[A-Za-z0-9 @.+()\\-áéíóúñÃ\"',]{0,14}";
    proptest::collection::vec(field, 0..11).prop_map(|fields| fields.join(","))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_file_is_refused_or_fully_accounted_for(
        rows in proptest::collection::vec(row(), 0..30),
        noise in proptest::collection::vec(any::<u8>(), 0..64),
        crlf in any::<bool>(),
        with_noise in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut text = HEADER.to_string();
        for r in &rows {
            text.push_str(r);
            text.push_str(if crlf { "\r\n" } else { "\n" });
        }
        let mut bytes = text.into_bytes();
        if with_noise {
            bytes.extend(&noise);
        }
        let path = dir.path().join("input.csv");
        std::fs::write(&path, &bytes).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let url = format!("sqlite://{}", dir.path().join("aviso.db").display());
            let store = aviso::store::open(&url).await.unwrap();
            let options = ImportOptions {
                list: "fuzz".into(),
                rejects: Some(dir.path().join("rejects.csv")),
                dry_run: false,
                encoding: None,
                progress: false,
            };
            match import_file(store.as_ref(), &path, &options, 0).await {
                Ok(s) => {
                    prop_assert_eq!(s.read, s.imported + s.updated + s.unchanged + s.rejected);
                    let counted = store.count_contacts(store.list_id("fuzz").await.unwrap(), &Default::default()).await.unwrap();
                    prop_assert_eq!(counted.total as u64, s.imported + s.updated + s.unchanged);
                }
                // A refused file is refused whole, saying which file: nothing
                // half-imported, and never a database error.
                Err(e) => {
                    prop_assert!(!matches!(e, ImportError::Store(_)), "{}", e);
                    prop_assert!(e.to_string().starts_with(&path.display().to_string()), "{}", e);
                    prop_assert!(!store.has_contacts().await.unwrap(), "refused, yet contacts were stored: {}", e);
                }
            }
            Ok(())
        })?;
    }
}
