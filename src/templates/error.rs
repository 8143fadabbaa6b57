//! Why a template could not be rendered, in words an operator can act on.

use crate::domain::ChannelKind;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("template {0:?} does not exist")]
    UnknownTemplate(String),
    #[error("template {template:?} has no {channel} version (its meta.toml lists {available})")]
    NoChannel {
        template: String,
        channel: ChannelKind,
        available: String,
    },
    #[error("template {template:?} needs the campaign variable {name:?} ({description}); give it with --var {name}=…")]
    MissingVariable {
        template: String,
        name: String,
        description: String,
    },
    #[error("{file}: {detail}")]
    Template { file: String, detail: String },
    #[error("{file}: the SMS is {segments} parts ({units} {unit}s, {encoding}), more than the template's max_segments = {max}")]
    TooLong {
        file: String,
        segments: usize,
        units: usize,
        unit: &'static str,
        encoding: &'static str,
        max: usize,
    },
}
