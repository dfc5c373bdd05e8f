//! Strings that many cached objects repeat (namespaces, GitOps applications): one allocation
//! each, shared by every object that carries it.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, RwLock};

/// The namespaces of parsed objects.
pub static NAMESPACES: LazyLock<Interner> = LazyLock::new(Interner::default);
/// The GitOps applications of parsed objects ([`crate::model::Meta::application`]).
pub static APPLICATIONS: LazyLock<Interner> = LazyLock::new(Interner::default);

/// A set of shared strings, safe to use from parallel parses.
///
/// A string already held costs a read lock and a reference count, so parses on the request path
/// do not queue behind one another. Strings that no object holds any more are dropped whenever the
/// set has doubled since the last sweep: namespaces that come and go do not accumulate, and the
/// sweeps cost O(1) per new string.
#[derive(Debug, Default)]
pub struct Interner(RwLock<Strings>);

#[derive(Debug, Default)]
struct Strings {
    set: HashSet<Arc<str>>,
    sweep_at: usize,
}

impl Interner {
    /// Below this many strings the set is never swept.
    const MIN_SWEEP: usize = 256;

    /// The shared copy of `s`.
    pub fn intern(&self, s: &str) -> Arc<str> {
        let held = self
            .0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .set
            .get(s)
            .cloned();
        if let Some(shared) = held {
            return shared;
        }
        let mut strings = self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(shared) = strings.set.get(s) {
            return shared.clone();
        }
        if strings.set.len() >= strings.sweep_at {
            // A count of 1 is the set's own: no object holds the string, and none can take it
            // while the write lock is held.
            strings.set.retain(|s| Arc::strong_count(s) > 1);
            strings.sweep_at = (strings.set.len() * 2).max(Self::MIN_SWEEP);
        }
        let shared: Arc<str> = Arc::from(s);
        strings.set.insert(shared.clone());
        shared
    }

    /// Strings held now, in use or not yet swept.
    pub fn len(&self) -> usize {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .set
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_allocation_per_string() {
        let interner = Interner::default();
        let a = interner.intern("team-001");
        let b = interner.intern(&String::from("team-001"));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &interner.intern("team-002")));
    }

    #[test]
    fn strings_no_one_holds_are_swept() {
        let interner = Interner::default();
        let kept = interner.intern("kept");
        for i in 0..10 * Interner::MIN_SWEEP {
            drop(interner.intern(&format!("gone-{i}")));
        }
        assert!(interner.len() <= Interner::MIN_SWEEP, "{}", interner.len());
        assert!(Arc::ptr_eq(&kept, &interner.intern("kept")));
    }
}
