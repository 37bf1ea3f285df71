//! Label sets as the evaluator passes them from step to step: shared, hashed once, with the
//! label set without `__name__` derived once.
//!
//! A range query evaluates the same series at every step. Cloning a [`Labels`] copies every
//! name and value, and hashing one walks them all; a [`SharedLabels`] is a reference count and
//! a precomputed 64-bit hash, so the per-step work (gathering samples per series, grouping,
//! matching, `check_unique`) clones a pointer and hashes a `u64`; the set without `__name__` is
//! built with it, once. Derived label sets that depend
//! only on the labels and the query text (an aggregation's group, a binary operation's match
//! signature and result labels) are memoized per AST node in a [`LabelMemo`] or [`PairMemo`],
//! so they too are built once per query, not once per step.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::ops::Deref;
use std::rc::Rc;

use obs_core::series::Labels;

/// Hash maps and sets of the evaluator (foldhash: fast, and the keys are not attacker-chosen
/// in a way that matters for one query's lifetime; its seeds are random per process).
pub(crate) type FastMap<K, V> = foldhash::HashMap<K, V>;
pub(crate) type FastSet<T> = foldhash::HashSet<T>;

/// The hash of a label set's content; fixed so that equal sets hash equal across the query.
const CONTENT_HASHER: foldhash::fast::FixedState =
    foldhash::fast::FixedState::with_seed(0x6f62_735f_7072_6f6d);

/// A label set shared by reference count, with its content hash computed once.
///
/// Equality is content equality (pointer equality first); `Hash` writes the precomputed hash.
#[derive(Clone)]
pub(crate) struct SharedLabels(Rc<Inner>);

struct Inner {
    labels: Labels,
    hash: u64,
    /// The set without `__name__`, when the set has one (a set without a name is its own).
    /// Built with the set rather than on first use: a lazily filled cell would make the set
    /// mutable behind a shared reference, and hash-map keys should not be.
    unnamed: Option<SharedLabels>,
}

impl SharedLabels {
    pub(crate) fn new(labels: Labels) -> SharedLabels {
        let unnamed = labels
            .metric_name()
            .is_some()
            .then(|| SharedLabels::new(labels.without_metric_name()));
        let hash = CONTENT_HASHER.hash_one(&labels);
        SharedLabels(Rc::new(Inner {
            labels,
            hash,
            unnamed,
        }))
    }

    /// The empty label set.
    pub(crate) fn empty() -> SharedLabels {
        SharedLabels::new(Labels::default())
    }

    pub(crate) fn labels(&self) -> &Labels {
        &self.0.labels
    }

    /// Whether both are the same shared set (not only equal ones).
    pub(crate) fn same_set(&self, other: &SharedLabels) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }

    /// The labels, cloned only when shared.
    pub(crate) fn into_labels(self) -> Labels {
        match Rc::try_unwrap(self.0) {
            Ok(inner) => inner.labels,
            Err(shared) => shared.labels.clone(),
        }
    }

    /// The label set without `__name__` (built with the set).
    pub(crate) fn without_metric_name(&self) -> SharedLabels {
        self.0.unnamed.as_ref().unwrap_or(self).clone()
    }
}

impl Deref for SharedLabels {
    type Target = Labels;

    fn deref(&self) -> &Labels {
        &self.0.labels
    }
}

impl PartialEq for SharedLabels {
    fn eq(&self, other: &SharedLabels) -> bool {
        Rc::ptr_eq(&self.0, &other.0) || (self.0.hash == other.0.hash && self.0.labels == other.0.labels)
    }
}

impl Eq for SharedLabels {}

impl Hash for SharedLabels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

impl fmt::Debug for SharedLabels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0.labels, f)
    }
}

impl fmt::Display for SharedLabels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.labels, f)
    }
}

/// Derived label sets of one AST node (an aggregation's groups, a binary operation's match
/// signatures), by input label set. Equal derived sets are one shared set, so that grouping
/// and matching on them compare pointers.
#[derive(Default)]
pub(crate) struct LabelMemo {
    derived: FastMap<SharedLabels, SharedLabels>,
    interned: FastSet<SharedLabels>,
}

impl LabelMemo {
    /// `derive(labels)`, built on the first call per distinct input set.
    pub(crate) fn get_or_derive(
        &mut self,
        labels: &SharedLabels,
        derive: impl FnOnce(&Labels) -> Labels,
    ) -> SharedLabels {
        if let Some(found) = self.derived.get(labels) {
            return found.clone();
        }
        let derived = intern(&mut self.interned, derive(labels));
        self.derived.insert(labels.clone(), derived.clone());
        derived
    }
}

/// Derived label sets of one AST node by a pair of input sets (a binary operation's result
/// labels, from the two sides' labels). Equal derived sets are one shared set.
#[derive(Default)]
pub(crate) struct PairMemo {
    derived: FastMap<(SharedLabels, SharedLabels), SharedLabels>,
    interned: FastSet<SharedLabels>,
}

impl PairMemo {
    /// `derive(first, second)`, built on the first call per distinct pair.
    pub(crate) fn get_or_derive(
        &mut self,
        first: &SharedLabels,
        second: &SharedLabels,
        derive: impl FnOnce(&Labels, &Labels) -> Labels,
    ) -> SharedLabels {
        let key = (first.clone(), second.clone());
        if let Some(found) = self.derived.get(&key) {
            return found.clone();
        }
        let derived = intern(&mut self.interned, derive(first, second));
        self.derived.insert(key, derived.clone());
        derived
    }
}

/// The shared set equal to `labels`, added to `interned` if new.
fn intern(interned: &mut FastSet<SharedLabels>, labels: Labels) -> SharedLabels {
    let labels = SharedLabels::new(labels);
    if let Some(found) = interned.get(&labels) {
        return found.clone();
    }
    interned.insert(labels.clone());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_content_is_equal_and_hashes_equal() {
        let a = SharedLabels::new(Labels::series([("__name__", "up"), ("job", "a")]).unwrap());
        let b = SharedLabels::new(Labels::series([("__name__", "up"), ("job", "a")]).unwrap());
        let c = SharedLabels::new(Labels::series([("__name__", "up"), ("job", "b")]).unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut set = FastSet::default();
        assert!(set.insert(a.clone()));
        assert!(!set.insert(b));
        assert!(set.insert(c));
    }

    #[test]
    fn the_unnamed_set_is_built_once() {
        let named = SharedLabels::new(Labels::series([("__name__", "up"), ("job", "a")]).unwrap());
        let first = named.without_metric_name();
        let second = named.without_metric_name();
        assert!(Rc::ptr_eq(&first.0, &second.0));
        assert_eq!(first.labels().to_string(), "{job=\"a\"}");
        // A set without a name is its own unnamed set.
        assert!(Rc::ptr_eq(&first.without_metric_name().0, &first.0));
    }

    #[test]
    fn equal_derived_sets_are_one_shared_set() {
        let mut memo = LabelMemo::default();
        let a = SharedLabels::new(Labels::series([("__name__", "up"), ("job", "a"), ("x", "1")]).unwrap());
        let b = SharedLabels::new(Labels::series([("__name__", "up"), ("job", "a"), ("x", "2")]).unwrap());
        let job = |labels: &Labels| labels.filtered(|label| label.name == "job");
        let from_a = memo.get_or_derive(&a, job);
        let from_b = memo.get_or_derive(&b, job);
        assert!(Rc::ptr_eq(&from_a.0, &from_b.0));
        assert!(Rc::ptr_eq(
            &memo.get_or_derive(&a, |_| unreachable!()).0,
            &from_a.0
        ));
    }
}
