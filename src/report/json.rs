//! One JSON object per line on stdout, for schedulers and log pipelines. Every line
//! starts with the schema's version (`"v"`) and, in a run over many targets, the
//! target's name (`"target_name"`); `docs/json-events.md` documents every event and field.

use crate::events::{Event, Reporter};

/// The version of the event schema: raised only when a field is renamed or removed
/// (new events and fields are added without it).
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Default)]
pub struct JsonReporter {
    /// The target's name, in a run over many (`--targets`).
    target: Option<String>,
}

impl JsonReporter {
    pub fn new() -> JsonReporter {
        JsonReporter::default()
    }

    pub fn for_target(name: &str) -> JsonReporter {
        JsonReporter {
            target: Some(name.to_string()),
        }
    }

    /// `object` (a serialized JSON object) with the version and target name in front.
    pub fn line(&self, object: &str) -> String {
        let rest = object.strip_prefix('{').unwrap_or(object);
        let mut head = format!("{{\"v\":{SCHEMA_VERSION}");
        if let Some(name) = &self.target {
            head.push_str(&format!(
                ",\"target_name\":{}",
                serde_json::Value::from(name.as_str())
            ));
        }
        if rest.starts_with('}') {
            format!("{head}{rest}")
        } else {
            format!("{head},{rest}")
        }
    }
}

/// Prints one line for a command outside the pipelines (`backups`, `history`,
/// `check`, ...): `{"v":1,"event":KIND, ...fields}`; `fields` is an object, or is put
/// under `"value"`.
pub fn print_event(kind: &str, fields: serde_json::Value) {
    let mut object = serde_json::Map::new();
    object.insert("event".into(), kind.into());
    match fields {
        serde_json::Value::Object(map) => object.extend(map),
        serde_json::Value::Null => {}
        other => {
            object.insert("value".into(), other);
        }
    }
    let line = serde_json::Value::Object(object).to_string();
    super::stdout_line(&JsonReporter::new().line(&line));
}

impl Reporter for JsonReporter {
    fn report(&self, event: &Event) {
        // Progress ticks would flood a log; the finished event carries the totals.
        if matches!(
            event,
            Event::BackupProgress { .. } | Event::RestoreProgress { .. }
        ) {
            return;
        }
        if let Ok(object) = serde_json::to_string(event) {
            super::stdout_line(&self.line(&object));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::JsonReporter;

    #[test]
    fn every_line_starts_with_the_version_and_the_target() {
        let plain = JsonReporter::new();
        assert_eq!(
            plain.line(r#"{"event":"stage_started","stage":"backup"}"#),
            r#"{"v":1,"event":"stage_started","stage":"backup"}"#
        );
        let tenant = JsonReporter::for_target("acme \"eu\"");
        let line = tenant.line(r#"{"event":"run_finished"}"#);
        assert_eq!(
            line,
            r#"{"v":1,"target_name":"acme \"eu\"","event":"run_finished"}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["target_name"], "acme \"eu\"");
        assert_eq!(plain.line("{}"), r#"{"v":1}"#);
    }
}
