use super::object::{field, Json, ParseError};
use super::Meta;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A core/v1 Service: its selector is what the rules compare with a Rollout's pod template.
#[derive(Debug, Clone, Default)]
pub struct Service {
    pub meta: Meta,
    pub selector: super::meta::Labels,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSpec {
    selector: Option<BTreeMap<String, String>>,
}

impl Service {
    pub(crate) fn from_spec(meta: Meta, spec: Json<'_>) -> Result<Self, ParseError> {
        let raw: RawSpec = field("spec", spec)?;
        Ok(Service {
            meta,
            selector: raw.selector.map(Into::into).unwrap_or_default(),
        })
    }
}
