//! `demo`: the embedded default. A full deploy of the bundled example migrations
//! against a throwaway local PostgreSQL, so a newcomer sees every stage in a minute.

use std::path::Path;

use crate::cli::GlobalArgs;
use crate::config::{self, LoadOptions};
use crate::exit_code;
use crate::report::stdout_line;
use crate::scratch::ScratchCluster;

/// The example project, compiled in so `ballast demo` works from any folder.
const EXAMPLE_MIGRATIONS: &[(&str, &str)] = &[
    (
        "20240101120000_create_customers.up.sql",
        include_str!("../../examples/migrations/20240101120000_create_customers.up.sql"),
    ),
    (
        "20240101120000_create_customers.down.sql",
        include_str!("../../examples/migrations/20240101120000_create_customers.down.sql"),
    ),
    (
        "20240102090000_create_orders.up.sql",
        include_str!("../../examples/migrations/20240102090000_create_orders.up.sql"),
    ),
    (
        "20240102090000_create_orders.down.sql",
        include_str!("../../examples/migrations/20240102090000_create_orders.down.sql"),
    ),
    (
        "2024-01-03-090000_add_order_status/up.sql",
        include_str!("../../examples/migrations/2024-01-03-090000_add_order_status/up.sql"),
    ),
    (
        "2024-01-03-090000_add_order_status/down.sql",
        include_str!("../../examples/migrations/2024-01-03-090000_add_order_status/down.sql"),
    ),
    (
        "20240105090000_index_orders_by_customer.sql",
        include_str!("../../examples/migrations/20240105090000_index_orders_by_customer.sql"),
    ),
];

pub async fn run(g: &GlobalArgs, dir: &Path, keep: bool) -> i32 {
    if let Err(e) = write_example(dir) {
        return super::fail(
            g,
            &format!("cannot write the example project to {}: {e}", dir.display()),
            exit_code::USAGE,
        );
    }
    let cluster = match tokio::task::spawn_blocking(ScratchCluster::start).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            return super::fail(
                g,
                &format!("cannot start a throwaway PostgreSQL: {e}"),
                exit_code::USAGE,
            )
        }
        Err(e) => return super::fail(g, &e.to_string(), exit_code::USAGE),
    };
    if !keep {
        // Ctrl-C ends the process without destructors: never leave a trust-auth server behind.
        let _ = cluster.stop_when_process_exits(std::process::id());
    }
    let url = cluster.url("postgres");
    let config_file = dir.join("deploy.toml");
    let text = format!(
        "# Written by `ballast demo`: the bundled example project against a throwaway PostgreSQL.\n\
         [database]\nurl = \"{url}\"\n\n[migrations]\ndir = \"migrations\"\n\n[backup]\ndir = \"backups\"\n"
    );
    if let Err(e) = std::fs::write(&config_file, text) {
        return super::fail(
            g,
            &format!("cannot write {}: {e}", config_file.display()),
            exit_code::USAGE,
        );
    }
    let mut environment: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k != "DATABASE_URL" && !k.starts_with("BALLAST_"))
        .collect();
    environment.push(("BALLAST_DATABASE__URL".into(), url.clone()));
    let options = LoadOptions {
        config_path: Some(config_file),
        env_name: None,
        environment,
        overrides: g.set.clone(),
        target: None,
    };
    let settings = match config::load(&options) {
        Ok(s) => s,
        Err(e) => return super::fail(g, &e.to_string(), exit_code::USAGE),
    };
    let code = super::pipeline_run::run_with(g, settings, "deploy", None).await;
    if !g.json {
        stdout_line("");
        stdout_line(&format!(
            "example project: {} (migrations, deploy.toml, backups)",
            dir.display()
        ));
        if keep {
            stdout_line(&format!(
                "PostgreSQL keeps running at {url} (data in {}); try: ballast --config {} history",
                cluster.base_dir().display(),
                dir.join("deploy.toml").display()
            ));
        } else {
            stdout_line(
                "the throwaway PostgreSQL is stopped; run with --keep to look around afterwards",
            );
        }
    }
    if keep {
        std::mem::forget(cluster);
    }
    code
}

fn write_example(dir: &Path) -> std::io::Result<()> {
    for (name, text) in EXAMPLE_MIGRATIONS {
        let path = dir.join("migrations").join(name);
        std::fs::create_dir_all(path.parent().expect("has a parent"))?;
        std::fs::write(path, text)?;
    }
    Ok(())
}
