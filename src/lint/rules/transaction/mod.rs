//! The `transaction` rules.

use crate::lint::Rule;

pub fn all() -> Vec<&'static dyn Rule> {
    vec![]
}
