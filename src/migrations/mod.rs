//! The `sql` engine's migration files: discovery, version order, checksums, statements.
//!
//! A folder is read in the layouts sqlx, diesel, dbmate, golang-migrate and Flyway
//! write ([`layout`], [`source`], [`flyway`]); versions
//! are ordered as those tools order them ([`version`]); each migration's checksum is
//! taken over its normalized text ([`checksum`]), so line endings and trailing
//! whitespace never count as drift.

pub mod checksum;
pub mod commit_point;
pub mod data_effects;
pub mod flyway;
pub mod in_parts;
pub mod layout;
pub mod phase;
pub mod source;
pub mod split;
pub mod version;

pub use layout::{Layout, Tool};
pub use phase::Phase;
pub use source::{
    load_folder, read_folder, refuse_transaction_control, run_as_written, Folder, Ignored,
    Migration, SourceError,
};
pub use version::{steps_back, Version};

/// Splits `items` into runs of transactional ones and lone non-transactional ones,
/// keeping the order: each run is one transaction, each lone one runs by itself (the
/// upgrade's migrations and the downgrade's down files alike).
pub fn batches<T>(items: &[T], transactional: impl Fn(&T) -> bool) -> Vec<&[T]> {
    batches_cut(items, transactional, |_| false)
}

/// [`batches`], where a transactional item for which `commit_after` is true also ends
/// its run: the transaction commits right after it ([`commit_point`]).
pub fn batches_cut<T>(
    items: &[T],
    transactional: impl Fn(&T) -> bool,
    commit_after: impl Fn(&T) -> bool,
) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, item) in items.iter().enumerate() {
        if !transactional(item) {
            if start < i {
                out.push(&items[start..i]);
            }
            out.push(&items[i..=i]);
            start = i + 1;
        } else if commit_after(item) {
            out.push(&items[start..=i]);
            start = i + 1;
        }
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_commit_point_ends_its_batch_and_the_next_starts_a_new_one() {
        // (transactional, commits after)
        let items = [
            (true, false),
            (true, true),
            (true, false),
            (false, false),
            (true, true),
        ];
        let shapes: Vec<usize> = super::batches_cut(&items, |i| i.0, |i| i.1)
            .iter()
            .map(|b| b.len())
            .collect();
        assert_eq!(shapes, [2, 1, 1, 1]);
    }
}
