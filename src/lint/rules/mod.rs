//! Every rule, by family. Each family's folder has one file per rule, each with its
//! own tests; `all` is the order findings are produced in.

pub mod breaking;
pub mod hygiene;
pub mod lock;
#[cfg(test)]
pub mod testing;
pub mod transaction;

use super::{Rule, RuleMeta};

pub fn all() -> Vec<&'static dyn Rule> {
    let mut rules = Vec::new();
    rules.extend(lock::all());
    rules.extend(breaking::all());
    rules.extend(transaction::all());
    rules.extend(hygiene::all());
    rules
}

/// A rule's description by id (config validation, docs).
pub fn meta(id: &str) -> Option<&'static RuleMeta> {
    all().into_iter().map(|r| r.meta()).find(|m| m.id == id)
}
