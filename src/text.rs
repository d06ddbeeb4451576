//! Numbers and lists as people read them in reports and messages: durations, byte
//! sizes, counts, long lists shortened. Shared by every layer, so it depends on none.

/// "1 migration" / "3 migrations".
pub fn migrations_count(n: usize) -> String {
    format!("{n} migration{}", if n == 1 { "" } else { "s" })
}

pub fn short_list(versions: &[String]) -> String {
    if versions.len() <= 6 {
        versions.join(", ")
    } else {
        format!(
            "{} … {}",
            versions[..3].join(", "),
            versions[versions.len() - 2..].join(", ")
        )
    }
}

pub fn human_duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

pub fn human_bytes(bytes: u64) -> String {
    indicatif::BinaryBytes(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(12), "12 ms");
        assert_eq!(human_duration(1500), "1.5 s");
        assert_eq!(human_duration(125_000), "2m05s");
    }

    #[test]
    fn long_version_lists_are_shortened() {
        let v: Vec<String> = (1..=10).map(|n| n.to_string()).collect();
        assert_eq!(short_list(&v), "1, 2, 3 … 9, 10");
    }
}
