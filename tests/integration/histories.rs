//! Realistic migration histories (`tests/fixtures/histories/`, four projects of 40 to
//! 48 migrations in diesel, sqlx and golang-migrate layouts): each deploys from an empty
//! database with no `--allow-risky`, as a new environment, a CI database or a new
//! tenant does. The lint's findings there are about tables the same plan created, and
//! refuse nothing; the same kinds of change on tables that hold rows still do
//! (`deploy::a_deploy_from_an_empty_database_is_not_refused_for_what_its_own_migrations_created`,
//! and `scripts/lint-fresh-deploys` for the numbers in docs/lint.md).

use std::path::Path;

use crate::harness::Project;

fn deploys_from_empty(history: &str) {
    let p = Project::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/histories")
        .join(history)
        .join("migrations");
    std::fs::remove_dir(p.path().join("migrations")).unwrap();
    copy(&fixture, &p.path().join("migrations"));
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(0);
    assert!(!run.stdout().contains("error ["), "{}", run.stdout());
    let status = p.ballast(&["status"]);
    status.expect_code(0);
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_diesel_history_in_lemmys_style_deploys_from_an_empty_database() {
    deploys_from_empty("forum-diesel");
}

#[test]
fn a_diesel_history_in_cratesios_style_deploys_from_an_empty_database() {
    deploys_from_empty("registry-diesel");
}

#[test]
fn a_sqlx_history_deploys_from_an_empty_database() {
    deploys_from_empty("newsletter-sqlx");
}

#[test]
fn a_golang_migrate_history_deploys_from_an_empty_database() {
    deploys_from_empty("feeds-migrate");
}
