use super::object::{field, ParseError};
use super::Meta;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// A core/v1 Service: its selector is what the rules compare with a Rollout's pod template.
#[derive(Debug, Clone, Default)]
pub struct Service {
    pub meta: Meta,
    pub selector: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSpec {
    selector: Option<BTreeMap<String, String>>,
}

impl Service {
    pub(crate) fn from_spec(meta: Meta, spec: &Value) -> Result<Self, ParseError> {
        let raw: RawSpec = field("spec", spec)?;
        Ok(Service {
            meta,
            selector: raw.selector.unwrap_or_default(),
        })
    }
}
