//! Why the settings could not be read, naming where the bad value came from.

use crate::config::ConfigError;
use crate::cost::PriceError;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A value of the file that does not parse: `aviso.toml: timezone: …`.
    #[error("{file}: {key}: {reason}")]
    File {
        file: String,
        key: String,
        reason: String,
    },
    #[error(transparent)]
    Prices(#[from] PriceError),
    /// `var` is the variable that named the file, or `CREDENTIALS_DIRECTORY`.
    #[error("{var}: {path}: cannot read the secret: {source}")]
    Secret {
        var: String,
        path: String,
        source: std::io::Error,
    },
}
