//! The `breaking` rules: changes that break application code still running against the
//! old schema during a rolling deploy (dropping or renaming what it uses, requiring what
//! it does not write). Errors by default; the fixes are expand/contract.

mod adding_required_field;
mod ban_drop_column;
mod ban_drop_database;
mod ban_drop_table;
mod ban_truncate_cascade;
mod pre_needs_post;
mod renaming_column;
mod renaming_table;

use crate::lint::Rule;

pub fn all() -> Vec<&'static dyn Rule> {
    vec![
        &ban_drop_column::BanDropColumn,
        &ban_drop_table::BanDropTable,
        &ban_drop_database::BanDropDatabase,
        &renaming_column::RenamingColumn,
        &renaming_table::RenamingTable,
        &adding_required_field::AddingRequiredField,
        &ban_truncate_cascade::BanTruncateCascade,
        &pre_needs_post::PreNeedsPost,
    ]
}

/// The rules whose findings are a release's contract step: removing or renaming what
/// the old code uses. In a migration marked `ballast:phase post` they are what the
/// release means to do after the rollout.
pub const CONTRACT: &[&str] = &[
    "ban-drop-column",
    "ban-drop-table",
    "renaming-column",
    "renaming-table",
];
