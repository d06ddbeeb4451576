//! One JSON object per line on stdout, for schedulers and log pipelines.

use crate::events::{Event, Reporter};

pub struct JsonReporter;

impl Reporter for JsonReporter {
    fn report(&self, event: &Event) {
        // Progress ticks would flood a log; the finished event carries the totals.
        if matches!(event, Event::BackupProgress { .. }) {
            return;
        }
        if let Ok(line) = serde_json::to_string(event) {
            super::stdout_line(&line);
        }
    }
}
