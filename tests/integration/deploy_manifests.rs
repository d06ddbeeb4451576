//! The deployment examples in deploy/ (Kubernetes manifests, the GitHub workflows, the
//! pre-commit hook, the Slack hook) say what they promise: they parse, have the kinds
//! and safety settings their README describes, carry config and command lines that
//! ballast itself accepts, run a zero-downtime release's steps in their order (expand,
//! roll out behind `ballast wait`, contract), and the notification hook posts without
//! leaking its webhook.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ballast::cli::{Cli, Command as Subcommand, PhaseArg};
use ballast::config::{load, targets, LoadOptions};
use ballast::migrations::Phase;
use clap::Parser;
use serde::Deserialize;
use serde_norway::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every YAML document in a file (`---`-separated), empty ones skipped.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

/// One Kubernetes object, with the file it came from for messages.
struct Manifest {
    file: String,
    doc: Value,
}

impl Manifest {
    fn kind(&self) -> &str {
        self.doc["kind"].as_str().unwrap_or("")
    }

    fn name(&self) -> &str {
        self.doc["metadata"]["name"].as_str().unwrap_or("")
    }

    /// The pod template's spec, for the kinds that run pods.
    fn pod_spec(&self) -> Option<&Value> {
        match self.kind() {
            "Job" => Some(&self.doc["spec"]["template"]["spec"]),
            "CronJob" => Some(&self.doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
            "Deployment" => Some(&self.doc["spec"]["template"]["spec"]),
            _ => None,
        }
    }

    /// The Job spec: the object's own, or a CronJob's template.
    fn job_spec(&self) -> &Value {
        match self.kind() {
            "CronJob" => &self.doc["spec"]["jobTemplate"]["spec"],
            _ => &self.doc["spec"],
        }
    }

    fn containers(&self) -> Vec<&Value> {
        let Some(pod) = self.pod_spec() else {
            return Vec::new();
        };
        ["initContainers", "containers"]
            .iter()
            .filter_map(|key| pod[*key].as_sequence())
            .flatten()
            .collect()
    }

    /// The containers that run ballast: every container of a Job or CronJob; a
    /// Deployment's init containers (its containers are the application).
    fn ballast_containers(&self) -> Vec<&Value> {
        match self.kind() {
            "Deployment" => self
                .pod_spec()
                .and_then(|pod| pod["initContainers"].as_sequence())
                .into_iter()
                .flatten()
                .collect(),
            _ => self.containers(),
        }
    }

    fn data(&self, key: &str) -> &str {
        self.doc["data"][key]
            .as_str()
            .unwrap_or_else(|| panic!("{} {}: no data key {key}", self.kind(), self.name()))
    }
}

fn kubernetes_manifests() -> Vec<Manifest> {
    let dir = repo().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|path| {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            documents(path).into_iter().map(move |doc| Manifest {
                file: file.clone(),
                doc,
            })
        })
        .collect()
}

fn find<'a>(
    manifests: &'a [Manifest],
    what: &str,
    pred: impl Fn(&Manifest) -> bool,
) -> &'a Manifest {
    manifests
        .iter()
        .find(|m| pred(m))
        .unwrap_or_else(|| panic!("no {what} in deploy/kubernetes/"))
}

/// The object of `kind` in `file`.
fn in_file<'a>(manifests: &'a [Manifest], file: &str, kind: &str) -> &'a Manifest {
    find(manifests, &format!("{kind} in {file}"), |m| {
        m.file == file && m.kind() == kind
    })
}

fn is_indexed_job(m: &Manifest) -> bool {
    m.kind() == "Job" && m.doc["spec"]["completionMode"].as_str() == Some("Indexed")
}

/// A container's command and args, as strings.
fn command_line(container: &Value) -> Vec<String> {
    ["command", "args"]
        .iter()
        .filter_map(|key| container[*key].as_sequence())
        .flatten()
        .map(|v| {
            v.as_str()
                .expect("command and args are strings")
                .to_string()
        })
        .collect()
}

/// What ballast makes of a container's args, as Kubernetes hands them over (an
/// Indexed Job's `$(JOB_COMPLETION_INDEX)` filled in as pod 0's).
fn ballast_cli(m: &Manifest, container: &Value) -> Cli {
    let args = command_line(container)
        .into_iter()
        .map(|a| a.replace("$(JOB_COMPLETION_INDEX)", "0"));
    Cli::try_parse_from(std::iter::once("ballast".to_string()).chain(args)).unwrap_or_else(|e| {
        panic!(
            "{} {}, container {:?}: ballast rejects its args: {e}",
            m.file,
            m.name(),
            container["name"]
        )
    })
}

/// The `--phase` of a `ballast deploy` command line; panics on another command.
fn deploy_phase(cli: &Cli, at: &str) -> Option<Phase> {
    match cli.command {
        Subcommand::Deploy {
            phase: PhaseArg { phase },
        } => phase,
        ref other => panic!("{at}: expected `ballast deploy`, got {other:?}"),
    }
}

/// The ballast command lines of a shell script (a workflow step's `run:`), as words:
/// continuation lines joined, comments skipped, each command of a pipeline or list
/// on its own, leading `VAR=value` assignments and redirections dropped. Enough for
/// the examples, which quote no ballast argument.
fn ballast_commands(script: &str) -> Vec<Vec<String>> {
    let joined = script.replace("\\\n", " ");
    let mut commands = Vec::new();
    for line in joined.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        for command in line.split(['|', ';', '&']) {
            let words: Vec<&str> = command.split_whitespace().collect();
            let Some(start) = words
                .iter()
                .position(|w| w.starts_with('-') || !w.contains('='))
            else {
                continue;
            };
            if words[start] != "ballast" {
                continue;
            }
            commands.push(
                words[start..]
                    .iter()
                    .take_while(|w| !w.starts_with('>') && !w.starts_with("2>"))
                    .map(|w| w.to_string())
                    .collect(),
            );
        }
    }
    commands
}

/// Every ballast command line of a script, parsed as ballast parses it.
fn parsed_ballast_commands(script: &str, at: &str) -> Vec<Cli> {
    ballast_commands(script)
        .iter()
        .map(|words| {
            Cli::try_parse_from(words)
                .unwrap_or_else(|e| panic!("{at}: ballast rejects `{}`: {e}", words.join(" ")))
        })
        .collect()
}

fn secret_data(secret: &Manifest) -> BTreeMap<String, String> {
    secret.doc["stringData"]
        .as_mapping()
        .unwrap_or_else(|| panic!("Secret {} has no stringData", secret.name()))
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_string(),
                v.as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A container's environment as ballast would see it: whole example Secrets from
/// `envFrom`, then `env`'s literal values and secret references (later wins, as in
/// Kubernetes).
fn container_env(container: &Value, secrets: &[&Manifest]) -> Vec<(String, String)> {
    let secret_named = |name: Option<&str>, what: &str| -> BTreeMap<String, String> {
        let secret = secrets
            .iter()
            .find(|s| Some(s.name()) == name)
            .unwrap_or_else(|| panic!("{what}: no example Secret {name:?}"));
        secret_data(secret)
    };
    let mut vars: Vec<(String, String)> = container["envFrom"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter(|source| !source["secretRef"].is_null())
        .flat_map(|source| secret_named(source["secretRef"]["name"].as_str(), "envFrom"))
        .collect();
    for var in container["env"].as_sequence().into_iter().flatten() {
        let Some(name) = var["name"].as_str() else {
            continue;
        };
        let value = if let Some(value) = var["value"].as_str() {
            value.to_string()
        } else {
            // Other sources (fieldRef: the pod's name) are not ballast's business.
            let reference = &var["valueFrom"]["secretKeyRef"];
            if reference.is_null() {
                continue;
            }
            let key = reference["key"].as_str().unwrap_or_default();
            secret_named(reference["name"].as_str(), &format!("env {name}"))
                .remove(key)
                .unwrap_or_else(|| panic!("env {name}: the example Secret has no key {key}"))
        };
        vars.retain(|(n, _)| n != name);
        vars.push((name.to_string(), value));
    }
    vars
}

/// The keys of the Secrets a container takes whole (`envFrom`).
fn env_from_secret_keys(container: &Value, secrets: &[&Manifest]) -> Vec<String> {
    let names: Vec<&str> = container["envFrom"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|source| source["secretRef"]["name"].as_str())
        .collect();
    secrets
        .iter()
        .filter(|s| names.contains(&s.name()))
        .flat_map(|s| secret_data(s).into_keys())
        .collect()
}

/// The text a file in a pod's container comes from: the ConfigMap key that a
/// `configMap` or projected volume puts at `path` (its `items`, or without them the
/// key of that name).
fn mounted_config<'a>(
    manifests: &'a [Manifest],
    job: &Manifest,
    container: &Value,
    path: &str,
) -> &'a str {
    let pod = job.pod_spec().unwrap();
    let (volume, relative) = container["volumeMounts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find_map(|m| {
            let rest = path
                .strip_prefix(m["mountPath"].as_str()?)?
                .strip_prefix('/')?;
            Some((m["name"].as_str()?, rest))
        })
        .unwrap_or_else(|| panic!("{}: nothing is mounted at {path}", job.file));
    let volume = pod["volumes"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|v| v["name"].as_str() == Some(volume))
        .unwrap_or_else(|| panic!("{}: no volume {volume}", job.file));
    let sources: Vec<&Value> = match volume["projected"]["sources"].as_sequence() {
        Some(sources) => sources.iter().map(|s| &s["configMap"]).collect(),
        None => vec![&volume["configMap"]],
    };
    let config_map_named = |name: &str| {
        find(manifests, "mounted ConfigMap", |m| {
            m.kind() == "ConfigMap" && m.name() == name
        })
    };
    let (config_map, key) = sources
        .iter()
        .find_map(|cm| {
            let name = cm["name"].as_str()?;
            let Some(items) = cm["items"].as_sequence() else {
                // The whole ConfigMap: a file per key.
                return (!config_map_named(name).doc["data"][relative].is_null())
                    .then_some((name, relative));
            };
            let item = items
                .iter()
                .find(|i| i["path"].as_str() == Some(relative))?;
            Some((name, item["key"].as_str()?))
        })
        .unwrap_or_else(|| panic!("{}: no ConfigMap item at {path}", job.file));
    config_map_named(config_map).data(key)
}

/// The value after `flag` in a command line.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).map(String::as_str)
}

/// The settings every deploy Job shares (job-deploy.yaml's header says why).
fn assert_is_a_deploy_job(deploy: &Manifest) {
    // A failed deploy is looked at by a human, never retried.
    assert_eq!(
        deploy.doc["spec"]["backoffLimit"].as_u64(),
        Some(0),
        "{}",
        deploy.file
    );
    assert!(
        deploy.doc["spec"]["ttlSecondsAfterFinished"]
            .as_u64()
            .is_some(),
        "{}",
        deploy.file
    );
    // A deadline would stop an upgrade half-way.
    assert!(
        deploy.doc["spec"]["activeDeadlineSeconds"].is_null(),
        "{}",
        deploy.file
    );
}

#[test]
fn every_deploy_yaml_file_parses() {
    let manifests = kubernetes_manifests();
    for file in [
        "configmap.yaml",
        "secret.example.yaml",
        "cronjob-backup.yaml",
        "job-deploy.yaml",
        "job-deploy-many.yaml",
        "job-deploy-pre.yaml",
        "app-deployment.yaml",
        "job-deploy-post.yaml",
    ] {
        assert!(
            manifests.iter().any(|m| m.file == file),
            "deploy/kubernetes/{file}: missing, or no object in it"
        );
    }
    for m in &manifests {
        assert!(
            m.doc["apiVersion"].as_str().is_some() && !m.kind().is_empty() && !m.name().is_empty(),
            "{}: a document without apiVersion, kind or metadata.name",
            m.file
        );
    }
    for file in [
        "deploy/github-actions.yml",
        "deploy/github-actions-release.yml",
        "deploy/pre-commit-config.example.yaml",
        ".pre-commit-hooks.yaml",
    ] {
        assert_eq!(
            documents(&repo().join(file)).len(),
            1,
            "{file}: one YAML document"
        );
    }
}

#[test]
fn kubernetes_manifests_have_the_expected_kinds() {
    let manifests = kubernetes_manifests();

    let cron = find(&manifests, "CronJob", |m| m.kind() == "CronJob");
    assert_eq!(
        cron.doc["spec"]["concurrencyPolicy"].as_str(),
        Some("Forbid")
    );
    assert!(
        cron.doc["spec"]["startingDeadlineSeconds"]
            .as_u64()
            .is_some(),
        "{}",
        cron.file
    );
    assert!(
        cron.doc["spec"]["successfulJobsHistoryLimit"]
            .as_u64()
            .is_some(),
        "{}",
        cron.file
    );
    assert!(
        cron.job_spec()["backoffLimit"]
            .as_u64()
            .is_some_and(|n| n <= 1),
        "{}",
        cron.file
    );
    assert!(
        cron.containers()
            .iter()
            .any(|c| command_line(c).iter().any(|a| a == "backup")),
        "the CronJob runs no `ballast backup`"
    );

    // The single-step deploy: every pending migration, whatever its phase.
    let deploy = in_file(&manifests, "job-deploy.yaml", "Job");
    assert!(!is_indexed_job(deploy), "{}", deploy.file);
    let args = command_line(deploy.containers()[0]);
    for word in ["deploy", "--yes", "--json"] {
        assert!(
            args.iter().any(|a| a == word),
            "{}: args {args:?} lack {word}",
            deploy.file
        );
    }
    let cli = ballast_cli(deploy, deploy.containers()[0]);
    assert_eq!(deploy_phase(&cli, &deploy.file), None, "{}", deploy.file);
    assert_is_a_deploy_job(deploy);

    let many = find(&manifests, "Indexed Job", is_indexed_job);
    let spec = &many.doc["spec"];
    assert!(
        spec["completions"].as_u64().is_some_and(|n| n > 0),
        "{}",
        many.file
    );
    assert!(
        spec["parallelism"].as_u64().is_some_and(|n| n > 0),
        "{}",
        many.file
    );
    // No shell: the image's entrypoint is ballast, which gets the pod's SIGTERM itself.
    let container = many.containers()[0];
    assert!(
        container["command"].is_null(),
        "{}: a command {:?} replaces ballast as the container's process",
        many.file,
        container["command"]
    );
    let args = command_line(container);
    let completions = spec["completions"].as_u64().unwrap() as usize;
    assert!(
        flag_value(&args, "--targets").is_some(),
        "{}: args {args:?} lack --targets",
        many.file
    );
    assert_eq!(
        flag_value(&args, "--shard"),
        Some(format!("$(JOB_COMPLETION_INDEX)/{completions}").as_str()),
        "{}: --shard's count must be completions, or tenants are skipped",
        many.file
    );
    // What ballast makes of the args once Kubernetes has filled in each index.
    for index in 0..completions {
        let expanded = args
            .iter()
            .map(|a| a.replace("$(JOB_COMPLETION_INDEX)", &index.to_string()));
        let cli = Cli::try_parse_from(std::iter::once("ballast".to_string()).chain(expanded))
            .unwrap_or_else(|e| {
                panic!(
                    "{}: ballast rejects the args of pod {index}: {e}",
                    many.file
                )
            });
        assert!(
            matches!(cli.command, Subcommand::Deploy { .. }),
            "{}",
            many.file
        );
        assert_eq!(
            cli.global.shard,
            Some((index, completions)),
            "{}",
            many.file
        );
        assert!(
            cli.global.yes && cli.global.json,
            "{}: --yes --json",
            many.file
        );
    }

    let config = find(&manifests, "ConfigMap with deploy.toml", |m| {
        m.kind() == "ConfigMap" && !m.doc["data"]["deploy.toml"].is_null()
    });
    assert!(
        config.data("deploy.toml").contains("[backup.s3]"),
        "{}",
        config.file
    );
    find(&manifests, "Secret", |m| m.kind() == "Secret");
}

#[test]
fn every_container_is_locked_down_and_sized() {
    let manifests = kubernetes_manifests();
    let mut seen = 0;
    for m in manifests.iter().filter(|m| m.pod_spec().is_some()) {
        let pod = m.pod_spec().unwrap();
        if m.kind() == "Deployment" {
            // A Deployment's pods are restarted: Never is not even accepted there.
            assert!(
                matches!(pod["restartPolicy"].as_str(), None | Some("Always")),
                "{}: a Deployment's restartPolicy is Always",
                m.file
            );
        } else {
            assert_eq!(pod["restartPolicy"].as_str(), Some("Never"), "{}", m.file);
        }
        // No shell: the image's entrypoint is ballast, the container's only process,
        // which gets the pod's SIGTERM itself; and its args are ballast's.
        for c in m.ballast_containers() {
            assert!(
                c["command"].is_null(),
                "{} {}: a command {:?} replaces ballast as the container's process",
                m.file,
                m.name(),
                c["command"]
            );
            ballast_cli(m, c);
        }
        for c in m.containers() {
            seen += 1;
            let at = format!("{} {}, container {:?}", m.file, m.name(), c["name"]);
            let security = &c["securityContext"];
            // The container's setting wins over the pod's.
            let non_root = security["runAsNonRoot"]
                .as_bool()
                .or(pod["securityContext"]["runAsNonRoot"].as_bool());
            assert_eq!(non_root, Some(true), "{at}: runAsNonRoot");
            assert_eq!(
                security["readOnlyRootFilesystem"].as_bool(),
                Some(true),
                "{at}"
            );
            assert_eq!(
                security["allowPrivilegeEscalation"].as_bool(),
                Some(false),
                "{at}"
            );
            let resources = &c["resources"];
            for key in ["cpu", "memory"] {
                assert!(
                    !resources["requests"][key].is_null(),
                    "{at}: no {key} request"
                );
            }
            assert!(
                !resources["limits"]["memory"].is_null(),
                "{at}: no memory limit"
            );
            // ballast never prompts without a terminal: none is given.
            assert_ne!(c["stdin"].as_bool(), Some(true), "{at}: stdin");
            assert_ne!(c["tty"].as_bool(), Some(true), "{at}: tty");
            // The writable places a read-only root needs.
            let mounts: Vec<&str> = c["volumeMounts"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|v| v["mountPath"].as_str())
                .collect();
            assert!(mounts.contains(&"/tmp"), "{at}: no /tmp mount");
        }
    }
    assert!(
        seen >= 7,
        "expected the backup, deploy, indexed deploy, pre, post, gate and application containers, saw {seen}"
    );
}

#[test]
fn example_secrets_hold_only_placeholders() {
    let manifests = kubernetes_manifests();
    for secret in manifests.iter().filter(|m| m.kind() == "Secret") {
        assert!(
            secret.file.contains("example"),
            "{}: a Secret outside an example file",
            secret.file
        );
        assert!(
            secret.doc["data"].is_null(),
            "{}: use stringData, readable placeholders",
            secret.file
        );
        for (key, value) in secret_data(secret) {
            assert!(
                value.contains("CHANGE-ME"),
                "{} {key}: not an obvious placeholder",
                secret.name()
            );
        }
    }
}

#[test]
fn configmaps_are_config_ballast_accepts() {
    let manifests = kubernetes_manifests();
    let secrets: Vec<&Manifest> = manifests.iter().filter(|m| m.kind() == "Secret").collect();
    let config = find(&manifests, "ConfigMap with deploy.toml", |m| {
        m.kind() == "ConfigMap" && !m.doc["data"]["deploy.toml"].is_null()
    });
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("deploy.toml");
    std::fs::write(&config_file, config.data("deploy.toml")).unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    let settings = |env_name: Option<String>, environment: Vec<(String, String)>| {
        let options = LoadOptions {
            config_path: Some(config_file.clone()),
            env_name: env_name.clone(),
            environment,
            overrides: Vec::new(),
            target: None,
        };
        load(&options)
            .unwrap_or_else(|e| panic!("ballast rejects the config (--env {env_name:?}): {e}"))
    };

    // The single-target ballast containers (the deploy Jobs of each release phase and
    // the application's gate), each with its container's environment (BALLAST_*
    // included) and the deploy.toml its --config names.
    let mut singles: Vec<(&Manifest, &Value)> = [
        "job-deploy.yaml",
        "job-deploy-pre.yaml",
        "job-deploy-post.yaml",
    ]
    .iter()
    .map(|file| {
        let job = in_file(&manifests, file, "Job");
        (job, job.containers()[0])
    })
    .collect();
    let app = in_file(&manifests, "app-deployment.yaml", "Deployment");
    singles.extend(app.ballast_containers().into_iter().map(|c| (app, c)));
    for (m, container) in singles {
        let at = format!("{}, container {:?}", m.file, container["name"]);
        let args = command_line(container);
        let config_at =
            flag_value(&args, "--config").unwrap_or_else(|| panic!("{at}: no --config"));
        assert_eq!(
            mounted_config(&manifests, m, container, config_at),
            config.data("deploy.toml"),
            "{at}: --config is not configmap.yaml's deploy.toml"
        );
        let s = settings(None, container_env(container, &secrets));
        assert!(s.database.url().is_ok(), "{at}: no database URL");
        assert!(s.backup.s3.is_some(), "configmap.yaml: no S3 storage");
        // The pod's name reaches pg_stat_activity: a waiting deploy names the pod in
        // its way, and a DBA sees which pod's gate is reading.
        assert_eq!(s.database.application_name, "ballast/$(POD_NAME)", "{at}");
    }

    // The tenants: the Indexed Job's targets file, read as ballast reads it.
    let many = find(&manifests, "Indexed Job", is_indexed_job);
    let container = many.containers()[0];
    let args = command_line(container);
    let targets_at = flag_value(&args, "--targets").expect("the Indexed Job has no --targets");
    let targets_file = dir.path().join("targets.toml");
    std::fs::write(
        &targets_file,
        mounted_config(&manifests, many, container, targets_at),
    )
    .unwrap();
    let tenants = targets::read(&targets_file)
        .unwrap_or_else(|e| panic!("{}: ballast rejects targets.toml: {e}", many.file));
    // Its deploy.toml is configmap.yaml's, checked above.
    let config_at = flag_value(&args, "--config").expect("the Indexed Job has no --config");
    assert_eq!(
        mounted_config(&manifests, many, container, config_at),
        config.data("deploy.toml"),
        "{}: --config is not configmap.yaml's deploy.toml",
        many.file
    );

    // The header's split: every pod gets a share, the same number of tenants each.
    let completions = many.doc["spec"]["completions"].as_u64().unwrap() as usize;
    assert!(
        tenants.len() >= completions,
        "{}: {completions} pods for {} targets leave pods with nothing to do",
        many.file,
        tenants.len()
    );
    assert_eq!(
        tenants.len() % completions,
        0,
        "{}: {} targets over {completions} pods are not an even split",
        many.file,
        tenants.len()
    );

    // Each target's URL comes from the Secret the pods take whole, and with the
    // container's environment its config loads.
    let provided = env_from_secret_keys(container, &secrets);
    let environment = container_env(container, &secrets);
    let mut prefixes = Vec::new();
    let mut timeouts = Vec::new();
    for tenant in &tenants {
        let url_env = tenant.layer["url_env"]
            .as_str()
            .unwrap_or_else(|| panic!("target {}: no url_env", tenant.name));
        assert!(
            provided.iter().any(|k| k == url_env),
            "target {}: no Secret in the Indexed Job's envFrom has {url_env}",
            tenant.name
        );
        let options = LoadOptions {
            config_path: Some(config_file.clone()),
            env_name: None,
            environment: environment.clone(),
            overrides: Vec::new(),
            target: Some((targets_file.clone(), tenant.name.clone())),
        };
        let s = load(&options)
            .unwrap_or_else(|e| panic!("ballast rejects target {}: {e}", tenant.name));
        let url = s.database.url().expect("a database URL");
        assert!(
            url.contains(&format!("tenant-{}.", tenant.name)),
            "target {}: got another tenant's URL {url}",
            tenant.name
        );
        prefixes.push(s.backup.s3.expect("S3 storage").prefix);
        timeouts.push(s.database.statement_timeout);
    }
    prefixes.sort();
    prefixes.dedup();
    assert_eq!(
        prefixes.len(),
        tenants.len(),
        "two tenants share a backup prefix"
    );
    // The large tenant's longer statement_timeout takes effect.
    timeouts.sort();
    assert!(
        timeouts.first() < timeouts.last(),
        "no tenant overrides database.statement_timeout"
    );
}

#[test]
fn release_manifests_expand_then_gate_the_rollout_then_contract() {
    let manifests = kubernetes_manifests();
    let pre = in_file(&manifests, "job-deploy-pre.yaml", "Job");
    let post = in_file(&manifests, "job-deploy-post.yaml", "Job");
    let app = in_file(&manifests, "app-deployment.yaml", "Deployment");

    // Steps 1 and 3: `deploy --phase pre` and `deploy --phase post`, unattended, with
    // the deploy Job's settings.
    for (job, phase) in [(pre, Phase::Pre), (post, Phase::Post)] {
        assert!(!is_indexed_job(job), "{}", job.file);
        let containers = job.containers();
        assert_eq!(containers.len(), 1, "{}: one container", job.file);
        let cli = ballast_cli(job, containers[0]);
        assert_eq!(
            deploy_phase(&cli, &job.file),
            Some(phase),
            "{}: `deploy --phase {phase}`",
            job.file
        );
        assert!(
            cli.global.yes && cli.global.json,
            "{}: --yes --json",
            job.file
        );
        assert!(
            !cli.global.allow_risky,
            "{}: --allow-risky only after a human read the plan",
            job.file
        );
        assert_is_a_deploy_job(job);
    }
    assert_ne!(
        pre.name(),
        post.name(),
        "the two steps' Jobs need names of their own"
    );

    // Step 2: the application, gated by `ballast wait --phase pre` in an init container.
    let gates = app.ballast_containers();
    let gate = gates
        .iter()
        .find(|c| matches!(ballast_cli(app, c).command, Subcommand::Wait { .. }))
        .unwrap_or_else(|| panic!("{}: no init container runs `ballast wait`", app.file));
    let args = command_line(gate);
    let timeout = match ballast_cli(app, gate).command {
        Subcommand::Wait { phase, timeout, .. } => {
            assert_eq!(
                phase,
                Phase::Pre,
                "{}: the gate waits for the expand step",
                app.file
            );
            timeout
        }
        _ => unreachable!(),
    };
    assert!(
        flag_value(&args, "--timeout").is_some() && timeout > Duration::ZERO,
        "{}: the gate's args {args:?} set no --timeout",
        app.file
    );
    // The gate reads the release's migration files: the image the Jobs deploy from.
    for job in [pre, post] {
        assert_eq!(
            gate["image"].as_str(),
            job.containers()[0]["image"].as_str(),
            "{}: the gate's image is not {}'s: it would wait for another release's migrations",
            app.file,
            job.file
        );
    }
    // It only reads: no backup storage keys in the application's pods.
    let names: Vec<&str> = gate["env"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(
        names.contains(&"DATABASE_URL") && !names.iter().any(|n| n.starts_with("AWS_")),
        "{}: the gate needs DATABASE_URL and nothing of the backup storage: {names:?}",
        app.file
    );
    // ... and reads as a read-only role, not with the deploy role's password.
    let url_key = gate["env"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|v| v["name"].as_str() == Some("DATABASE_URL"))
        .and_then(|v| v["valueFrom"]["secretKeyRef"]["key"].as_str());
    assert_eq!(
        url_key,
        Some("database-url-readonly"),
        "{}: the gate uses the deploy role's URL",
        app.file
    );
    // The application itself is the Deployment's container, started after the gate.
    let pod = app.pod_spec().unwrap();
    assert!(
        pod["containers"]
            .as_sequence()
            .is_some_and(|c| !c.is_empty()),
        "{}: no application container",
        app.file
    );
    // The old pods serve while the new ones wait, and the rollout is reported stuck
    // only after the gate has given up once.
    assert_eq!(
        app.doc["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"].as_u64(),
        Some(0),
        "{}: maxUnavailable 0",
        app.file
    );
    let deadline = app.doc["spec"]["progressDeadlineSeconds"]
        .as_u64()
        .unwrap_or(600);
    assert!(
        deadline > timeout.as_secs(),
        "{}: progressDeadlineSeconds {deadline} ends before the gate's --timeout {timeout:?}",
        app.file
    );
    // The pods carry the release's version, which step 3 waits on.
    let version = pre.doc["metadata"]["labels"]["app.kubernetes.io/version"].as_str();
    assert!(version.is_some(), "{}: no version label", pre.file);
    assert_eq!(
        app.doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"].as_str(),
        version,
        "{}: the pods' version label is not the release's",
        app.file
    );
    assert_eq!(
        post.doc["metadata"]["labels"]["app.kubernetes.io/version"].as_str(),
        version,
        "{}",
        post.file
    );

    // The README's sequence names these objects, in this order.
    let readme = std::fs::read_to_string(repo().join("deploy/kubernetes/README.md")).unwrap();
    let at = |what: &str| {
        readme
            .find(what)
            .unwrap_or_else(|| panic!("deploy/kubernetes/README.md does not say `{what}`"))
    };
    let steps = [
        at("kubectl apply -f job-deploy-pre.yaml"),
        at(&format!(
            "kubectl wait --for=condition=complete --timeout=1h job/{}",
            pre.name()
        )),
        at("kubectl apply -f app-deployment.yaml"),
        at(&format!("kubectl rollout status deployment/{}", app.name())),
        at("kubectl apply -f job-deploy-post.yaml"),
        at(&format!(
            "kubectl wait --for=condition=complete --timeout=1h job/{}",
            post.name()
        )),
    ];
    assert!(
        steps.windows(2).all(|w| w[0] < w[1]),
        "deploy/kubernetes/README.md: the release's commands are out of order"
    );
}

#[test]
fn github_workflow_checks_pull_requests_and_deploys_main() {
    let workflow = &documents(&repo().join("deploy/github-actions.yml"))[0];
    let jobs = &workflow["jobs"];
    let runs = |job: &str| -> String {
        jobs[job]["steps"]
            .as_sequence()
            .unwrap_or_else(|| panic!("no job {job}"))
            .iter()
            .filter_map(|step| step["run"].as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    // `pull_request:` with no settings is a key with a null value: look for the keys.
    let triggers = workflow["on"].as_mapping().expect("no `on:` triggers");
    assert!(
        triggers.contains_key("pull_request") && triggers.contains_key("push"),
        "the workflow must run on pull_request and on push"
    );
    assert_eq!(
        workflow["on"]["push"]["branches"][0].as_str(),
        Some("main"),
        "deploys come from main"
    );
    assert_eq!(
        jobs["check"]["if"].as_str(),
        Some("github.event_name == 'pull_request'")
    );

    let check = runs("check");
    assert!(check.contains("ballast check --format github"), "{check}");
    assert!(
        !jobs["check"]["services"]["postgres"].is_null(),
        "check: no postgres service"
    );

    let deploy = runs("deploy");
    assert_eq!(jobs["deploy"]["environment"].as_str(), Some("production"));
    let roundtrip = deploy.find("run roundtrip").expect("deploy: no roundtrip");
    let real = deploy
        .find("deploy --yes --json")
        .expect("deploy: no ballast deploy");
    assert!(
        roundtrip < real,
        "the roundtrip must come before the real deploy"
    );
    assert!(
        jobs["deploy"]["env"]["DATABASE_URL"].is_null(),
        "a job-wide DATABASE_URL would point the roundtrip at production"
    );
    // Only commands and flags that exist.
    for job in ["check", "deploy"] {
        let found = parsed_ballast_commands(&runs(job), &format!("github-actions.yml {job}"));
        assert!(!found.is_empty(), "{job}: no ballast command");
    }
}

#[test]
fn github_release_workflow_expands_then_rolls_out_then_contracts() {
    let file = "deploy/github-actions-release.yml";
    let workflow = &documents(&repo().join(file))[0];
    let job = &workflow["jobs"]["release"];
    assert_eq!(job["environment"].as_str(), Some("production"), "{file}");
    // A cancelled deploy is an interrupted one.
    assert_eq!(
        job["concurrency"]["cancel-in-progress"].as_bool(),
        Some(false),
        "{file}"
    );
    let steps: Vec<&str> = job["steps"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{file}: no release job"))
        .iter()
        .filter_map(|step| step["run"].as_str())
        .collect();

    // Each step's ballast command lines, parsed as ballast parses them.
    let mut pre = Vec::new();
    let mut post = Vec::new();
    for (index, run) in steps.iter().enumerate() {
        for cli in parsed_ballast_commands(run, &format!("{file} step {index}")) {
            let Subcommand::Deploy { .. } = cli.command else {
                continue;
            };
            assert!(
                cli.global.yes && cli.global.json,
                "{file}: an unattended deploy needs --yes (and --json for its events): {run}"
            );
            match deploy_phase(&cli, file) {
                Some(Phase::Pre) => pre.push(index),
                Some(Phase::Post) => post.push(index),
                None => panic!("{file}: a deploy without --phase in a phased release: {run}"),
            }
        }
    }
    let rollout: Vec<usize> = steps
        .iter()
        .enumerate()
        .filter(|(_, run)| run.contains("kubectl rollout status"))
        .map(|(index, _)| index)
        .collect();
    assert!(
        pre.len() == 1 && rollout.len() == 1 && post.len() == 1,
        "{file}: one `deploy --phase pre` step ({pre:?}), one rollout ({rollout:?}), one `deploy --phase post` ({post:?})"
    );
    assert!(
        pre[0] < rollout[0] && rollout[0] < post[0],
        "{file}: the order must be deploy --phase pre, the rollout, deploy --phase post"
    );

    // The rollout changes the gate's image with the application's: the gate must read
    // the new release's migrations.
    let manifests = kubernetes_manifests();
    let app = in_file(&manifests, "app-deployment.yaml", "Deployment");
    let rollout = steps[rollout[0]];
    for container in app.containers() {
        let name = container["name"].as_str().unwrap();
        assert!(
            rollout.contains(&format!("{name}=")),
            "{file}: the rollout does not set container {name}'s image"
        );
    }
    assert!(
        rollout.contains(&format!("deployment/{}", app.name())),
        "{file}: the rollout is not app-deployment.yaml's Deployment"
    );
}

#[test]
fn pre_commit_hook_is_ballast_check() {
    let hooks = &documents(&repo().join(".pre-commit-hooks.yaml"))[0];
    let hook = hooks
        .as_sequence()
        .and_then(|s| s.iter().find(|h| h["id"].as_str() == Some("ballast-check")))
        .expect("no hook ballast-check");
    assert_eq!(hook["entry"].as_str(), Some("ballast check --all"));
    assert_eq!(hook["language"].as_str(), Some("system"));
    assert_eq!(hook["pass_filenames"].as_bool(), Some(false));
    assert!(hook["files"]
        .as_str()
        .is_some_and(|f| f.contains("migrations")));

    let example =
        std::fs::read_to_string(repo().join("deploy/pre-commit-config.example.yaml")).unwrap();
    assert!(example.contains("id: ballast-check"));
}

// --- deploy/notify-slack.sh ------------------------------------------------------------

const SCRIPT: &str = "deploy/notify-slack.sh";
/// The secret part of the fake webhook URL: it must never be printed.
const HOOK_PATH: &str = "/services/T0000/B0000/s3cr3t-hook-path";

fn run_script(env: &[(&str, &str)], stdin: &str, path: Option<&Path>) -> Output {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg(repo().join(SCRIPT))
        .env_clear()
        .env(
            "PATH",
            path.map(|p| p.as_os_str().to_owned())
                .unwrap_or_else(|| std::env::var_os("PATH").unwrap_or_default()),
        )
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run sh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "a notification hook must always exit 0: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !printed.contains("s3cr3t-hook-path"),
        "the script printed the webhook: {printed}"
    );
    output
}

fn have(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// A webhook on loopback that answers 200 and records each request: (request line, body).
struct FakeWebhook {
    port: u16,
    requests: Arc<Mutex<Vec<(String, String)>>>,
}

impl FakeWebhook {
    fn start() -> FakeWebhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        // Lives until the test binary exits; each connection is one request.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Some(request) = serve(stream) {
                    recorded.lock().unwrap().push(request);
                }
            }
        });
        FakeWebhook { port, requests }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}{HOOK_PATH}", self.port)
    }

    /// The requests so far, waiting briefly for the one just sent.
    fn wait_for(&self, count: usize) -> Vec<(String, String)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.requests.lock().unwrap().clone();
            if got.len() >= count || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn serve(stream: TcpStream) -> Option<(String, String)> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let mut stream = stream;
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        .ok()?;
    Some((
        request_line.trim_end().to_string(),
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

/// The posted message's text: the body must be JSON with a `text` string.
fn posted_text(body: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("the posted body is not JSON ({e}): {body}"));
    json["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {body}"))
        .to_string()
}

#[test]
fn notify_slack_script_is_valid_sh() {
    let status = Command::new("sh")
        .arg("-n")
        .arg(repo().join(SCRIPT))
        .status()
        .expect("run sh -n");
    assert!(status.success(), "sh -n {SCRIPT} failed");
}

#[test]
fn notify_slack_posts_the_outcome_and_run_id_without_printing_the_webhook() {
    if have("curl").is_none() {
        eprintln!("skipped: curl is not installed, so notify-slack.sh cannot post");
        return;
    }
    let webhook = FakeWebhook::start();
    let url = webhook.url();
    let env = [
        ("SLACK_WEBHOOK_URL", url.as_str()),
        ("BALLAST_RUN_ID", "0192f0c4-run-from-env"),
        ("BALLAST_DATABASE", "postgres://app@db.internal/shop"),
        ("BALLAST_PIPELINE", "deploy"),
        ("BALLAST_OUTCOME", "failed-not-recovered"),
        ("BALLAST_EXIT_CODE", "4"),
        ("BALLAST_FAILED_STAGE", "verify"),
        (
            "BALLAST_BACKUP",
            "s3://acme-db-backups/shop/20250101.dump.gz",
        ),
    ];
    // The run summary as ballast writes it: the error has quotes, a backslash and a newline.
    let summary = serde_json::json!({
        "event": "run_finished",
        "run_id": "0192f0c4-run-from-json",
        "pipeline": "deploy",
        "outcome": "failed-not-recovered",
        "exit_code": 4,
        "failed_stage": "verify",
        "error": "check \"orders have customers\" returned false\\n at line 1\nsecond line",
        "backup": "s3://acme-db-backups/shop/20250101.dump.gz",
        "next_steps": ["ballast restore 20250101"],
    })
    .to_string();
    run_script(&env, &summary, None);
    let requests = webhook.wait_for(1);
    let (request_line, body) = requests.first().expect("nothing was posted");
    assert_eq!(request_line, &format!("POST {HOOK_PATH} HTTP/1.1"));
    let text = posted_text(body);
    assert!(text.contains("failed-not-recovered"), "{text}");
    // With jq the summary is read; without it, the environment says the same.
    let run_id = if have("jq").is_some() {
        "0192f0c4-run-from-json"
    } else {
        "0192f0c4-run-from-env"
    };
    assert!(text.contains(run_id), "{text}");
    assert!(text.contains("verify"), "{text}");

    // Nothing on stdin (a hook run by a ballast that hands no summary): the variables.
    run_script(&env, "", None);
    let requests = webhook.wait_for(2);
    let text = posted_text(
        &requests
            .get(1)
            .expect("nothing was posted without a summary")
            .1,
    );
    assert!(
        text.contains("failed-not-recovered") && text.contains("0192f0c4-run-from-env"),
        "{text}"
    );
}

#[test]
fn notify_slack_falls_back_to_the_environment_without_jq() {
    // A PATH holding only what the script needs besides jq.
    let tools = ["curl", "cat", "tr", "sed", "tail"];
    let found: Vec<(&str, PathBuf)> = tools
        .iter()
        .filter_map(|t| have(t).map(|p| (*t, p)))
        .collect();
    if found.len() < tools.len() {
        eprintln!("skipped: one of {tools:?} is not installed");
        return;
    }
    let bin = tempfile::tempdir().unwrap();
    for (tool, path) in &found {
        std::os::unix::fs::symlink(path, bin.path().join(tool)).unwrap();
    }
    let webhook = FakeWebhook::start();
    let url = webhook.url();
    let env = [
        ("SLACK_WEBHOOK_URL", url.as_str()),
        ("BALLAST_RUN_ID", "run-without-jq"),
        ("BALLAST_OUTCOME", "refused"),
        ("BALLAST_EXIT_CODE", "3"),
        // Escaped by hand without jq: quotes, a backslash, a tab.
        ("BALLAST_FAILED_STAGE", "state-check \"drift\" C:\\x\tend"),
    ];
    run_script(
        &env,
        r#"{"outcome": "refused", "run_id": "run-without-jq"}"#,
        Some(bin.path()),
    );
    let requests = webhook.wait_for(1);
    let text = posted_text(&requests.first().expect("nothing was posted without jq").1);
    assert!(
        text.contains("refused") && text.contains("run-without-jq"),
        "{text}"
    );
    assert!(text.contains("state-check \"drift\" C:\\x end"), "{text}");
}

#[test]
fn notify_slack_exits_zero_and_says_why_when_it_cannot_post() {
    // No webhook configured.
    let out = run_script(&[("BALLAST_OUTCOME", "refused")], "", None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("SLACK_WEBHOOK_URL is not set"));

    if have("curl").is_none() {
        eprintln!("skipped the refused-connection case: curl is not installed");
        return;
    }
    // A port nobody listens on: the connection is refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}{HOOK_PATH}");
    let out = run_script(
        &[
            ("SLACK_WEBHOOK_URL", url.as_str()),
            ("BALLAST_OUTCOME", "refused"),
        ],
        "",
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("could not post"), "{err}");
}
