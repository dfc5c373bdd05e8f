//! A DestinationRule on its own.

use super::{Finding, RuleId};
use crate::model::{DestinationRule, Kind, ObjectKey};
use std::collections::BTreeMap;

pub fn check(dr: &DestinationRule) -> Vec<Finding> {
    let key = ObjectKey::new(Kind::DestinationRule, &dr.meta.namespace, &dr.meta.name);
    let mut first_seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, subset) in dr.subsets.iter().enumerate() {
        if let Some(first) = first_seen.insert(subset.name.as_str(), i) {
            first_seen.insert(subset.name.as_str(), first);
            out.push(Finding::new(
 RuleId::SubsetNameDuplicate,
                &key,
                format!("spec.subsets[{i}].name"),
                format!(
                    "expected unique subset names, found duplicate subset names: {} (also spec.subsets[{first}]); \
                     Istio rejects the DestinationRule; rename or merge them",
                    subset.name
                ),
            )
            .about(format!("subset {:?}", subset.name)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::model::Object;
    use crate::rules::testing::{dr, rules_of};

    fn check(o: Object) -> Vec<crate::rules::Finding> {
        match o {
            Object::DestinationRule(d) => super::check(&d),
            _ => unreachable!(),
        }
    }

    #[test]
    fn duplicate_subsets() {
        assert!(check(dr("d", "h", &["stable", "canary"])).is_empty());
        let f = check(dr("d", "h", &["stable", "canary", "stable"]));
        assert_eq!(rules_of(&f), ["subset-name-duplicate"]);
        assert_eq!(f[0].path, "spec.subsets[2].name");
    }
}
