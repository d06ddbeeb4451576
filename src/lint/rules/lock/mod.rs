//! The `lock` rules: statements that take a strong lock on, or rewrite, a table that
//! already holds data. Errors by default.

mod require_concurrent_index_creation;

use crate::lint::Rule;

pub fn all() -> Vec<&'static dyn Rule> {
    vec![&require_concurrent_index_creation::RequireConcurrentIndexCreation]
}
