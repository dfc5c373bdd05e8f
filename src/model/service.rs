use super::object::{field, Json, ParseError};
use super::Meta;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A core/v1 Service: its selector is what the rules compare with a Rollout's pod template.
///
/// Most cached Services belong to no Rollout, and a Rollout that names one may be admitted at any
/// time, so every Service keeps what that check reads and nothing else: its key (in `meta`, the
/// name one allocation shared with the key, the namespace shared), the selector (compared with
/// the pod template, shown whole by `explain`) and the managed-by annotation (a Service another
/// Rollout manages). The rest of `meta` is for the Service as an admission request.
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
