use super::object::{exact, field, Json, ParseError};
use super::Meta;
use serde::Deserialize;

/// A `networking.istio.io` DestinationRule: its host and the names of its subsets.
#[derive(Debug, Clone, Default)]
pub struct DestinationRule {
    pub meta: Meta,
    pub host: String,
    pub subsets: Vec<Subset>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Subset {
    pub name: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSpec {
    host: String,
    #[serde(deserialize_with = "exact::opt_vec")]
    subsets: Option<Vec<Subset>>,
}

impl DestinationRule {
    pub(crate) fn from_spec(meta: Meta, spec: Json<'_>) -> Result<Self, ParseError> {
        let raw: RawSpec = field("spec", spec)?;
        Ok(DestinationRule {
            meta,
            host: raw.host,
            subsets: raw.subsets.unwrap_or_default(),
        })
    }

    pub fn has_subset(&self, name: &str) -> bool {
        self.subsets.iter().any(|s| s.name == name)
    }

    pub fn subset_names(&self) -> Vec<&str> {
        self.subsets.iter().map(|s| s.name.as_str()).collect()
    }
}
