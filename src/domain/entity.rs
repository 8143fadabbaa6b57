use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{fold, Invalid};

/// One of the four entities whose citizens abroad vote in 2022.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Entity {
    Ags,
    Dgo,
    Oax,
    Tam,
}

impl Entity {
    pub const ALL: [Entity; 4] = [Entity::Ags, Entity::Dgo, Entity::Oax, Entity::Tam];

    /// Accepts the code (`OAX`) or the full name (`Oaxaca`, `OAXACA`), in any case.
    pub fn parse(input: &str) -> Result<Entity, Invalid> {
        match fold(input).as_str() {
            "ags" | "aguascalientes" => Ok(Entity::Ags),
            "dgo" | "durango" => Ok(Entity::Dgo),
            "oax" | "oaxaca" => Ok(Entity::Oax),
            "tam" | "tamps" | "tamaulipas" => Ok(Entity::Tam),
            "" => Err(Invalid::new("entity is empty")),
            _ => Err(Invalid::new(format!(
                "unknown entity {:?}: expected AGS, DGO, OAX or TAM (or the full name)",
                input.trim()
            ))),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Entity::Ags => "AGS",
            Entity::Dgo => "DGO",
            Entity::Oax => "OAX",
            Entity::Tam => "TAM",
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Entity {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Entity::parse(s)
    }
}

impl TryFrom<String> for Entity {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Entity::parse(&s)
    }
}

impl From<Entity> for String {
    fn from(e: Entity) -> String {
        e.code().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_full_names_in_any_case() {
        for (input, want) in [
            ("OAX", Entity::Oax),
            ("oax", Entity::Oax),
            ("Oaxaca", Entity::Oax),
            ("OAXACA", Entity::Oax),
            (" Durango ", Entity::Dgo),
            ("AGUASCALIENTES", Entity::Ags),
            ("Tamaulipas", Entity::Tam),
        ] {
            assert_eq!(Entity::parse(input), Ok(want), "{input}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsers_of_small_vocabularies_never_panic(s in "\\PC{0,30}") {
            let _ = Entity::parse(&s);
            let _ = crate::domain::Language::parse(&s);
            let _ = crate::domain::Country::parse(&s);
            let _ = crate::domain::Modality::parse(&s);
        }
    }

    #[test]
    fn other_entities_are_refused_by_name() {
        for input in ["ZAC", "XX", "Jalisco", ""] {
            let err = Entity::parse(input).unwrap_err();
            assert!(err.0.contains("entity"), "{err}");
        }
    }
}
