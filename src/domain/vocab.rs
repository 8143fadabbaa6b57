//! Small closed vocabularies from the registry export and the message pipeline.

/// A closed set of lower-case codes with parsing (case and accents folded),
/// display and serde, so every vocabulary of the program behaves the same.
macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $code:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn parse(input: &str) -> Result<$name, $crate::domain::Invalid> {
                let folded = $crate::domain::fold(input);
                $(
                    if folded == $crate::domain::fold($code) $(|| folded == $alias)* {
                        return Ok($name::$variant);
                    }
                )+
                Err($crate::domain::Invalid::new(format!(
                    "unknown {} {:?}: expected one of {}",
                    stringify!($name).to_lowercase(),
                    input.trim(),
                    [$($code),+].join(", ")
                )))
            }

            pub fn code(&self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // `pad`: table columns (`{:<10}`) line up as with the codes.
                f.pad(self.code())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::Invalid;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::domain::Invalid;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                $name::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.code().to_string()
            }
        }
    };
}

pub(crate) use vocabulary;

vocabulary!(
    /// How a message reaches a person.
    ChannelKind { Sms => "sms", Email => "email" | "e-mail" | "correo" }
);

vocabulary!(
    /// A citizen from the registry, or an organisation from the OSC directory.
    ContactKind { Citizen => "citizen" | "ciudadano", Organization => "organization" | "organisation" | "osc" }
);

vocabulary!(
    /// The voting credential: issued abroad (CPVE) or in Mexico (CPV).
    Credential { Cpve => "CPVE", Cpv => "CPV" }
);

vocabulary!(
    /// The registry's population segment.
    Population { Primaria => "primaria" | "primary", Secundaria => "secundaria" | "secondary", Terciaria => "terciaria" | "tertiary" }
);

vocabulary!(
    /// How the citizen chose to vote.
    Modality { Electronica => "electronica" | "internet" | "electronic" | "online", Postal => "postal" | "correo postal" }
);

vocabulary!(
    /// Why an address must never be messaged again.
    SuppressionReason {
        OptOut => "opt_out" | "unsubscribe",
        HardBounce => "hard_bounce",
        Invalid => "invalid",
        Deceased => "deceased",
        DoNotContact => "do_not_contact",
        Complaint => "complaint",
        // The citizen's own BAJA by SMS: the only reason their ALTA may lift.
        Reply => "reply_opt_out",
    }
);

vocabulary!(
    /// Which channels a suppression covers.
    SuppressionScope { Sms => "sms", Email => "email" | "e-mail", All => "all" | "todos" }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabularies_fold_case_and_accents() {
        assert_eq!(Modality::parse("Electrónica"), Ok(Modality::Electronica));
        assert_eq!(Credential::parse("cpve"), Ok(Credential::Cpve));
        assert_eq!(ChannelKind::parse("SMS"), Ok(ChannelKind::Sms));
        assert_eq!(
            SuppressionReason::parse("hard_bounce"),
            Ok(SuppressionReason::HardBounce)
        );
        let err = Population::parse("cuaternaria").unwrap_err();
        assert!(err.0.contains("primaria, secundaria, terciaria"), "{err}");
    }
}
