//! Reading recorded logs, and playing them back in recorded time.

use std::path::Path;

use anyhow::Context as _;

use crate::event::{Record, VERSION};

/// A line of a log that could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedLine {
    /// 1-based line number.
    pub line: usize,
    pub reason: String,
}

/// A parsed log: the usable records in file order, and the lines skipped.
#[derive(Clone, Debug, Default)]
pub struct Recording {
    pub records: Vec<Record>,
    pub skipped: Vec<SkippedLine>,
}

/// Parses JSON Lines. Blank lines are ignored; damaged lines, lines of
/// another contract version and kinds this build does not know are skipped
/// with a reason, never fatal.
pub fn parse_log(text: &str) -> Recording {
    parse_log_bytes(text.as_bytes())
}

/// Parses JSON Lines from raw bytes, as [`parse_log`] does; a line that is
/// not UTF-8 is skipped like any other damaged line.
pub fn parse_log_bytes(bytes: &[u8]) -> Recording {
    let mut recording = Recording::default();
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_number = index + 1;
        let Ok(line) = std::str::from_utf8(line) else {
            recording.skipped.push(SkippedLine {
                line: line_number,
                reason: "not UTF-8 text".to_owned(),
            });
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(record) => recording.records.push(record),
            Err(reason) => recording.skipped.push(SkippedLine {
                line: line_number,
                reason,
            }),
        }
    }
    recording
}

fn parse_line(line: &str) -> Result<Record, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    match value.get("v").and_then(serde_json::Value::as_u64) {
        Some(version) if version == u64::from(VERSION) => {}
        Some(version) => {
            return Err(format!(
                "unsupported contract version {version}: expected {VERSION}"
            ));
        }
        None => return Err(format!("no contract version (\"v\"): expected {VERSION}")),
    }
    serde_json::from_value(value).map_err(|e| format!("not an event this version reads: {e}"))
}

/// Reads and parses a log file.
pub fn read_log(path: &Path) -> anyhow::Result<Recording> {
    let bytes =
        std::fs::read(path).with_context(|| format!("failed to read log {}", path.display()))?;
    Ok(parse_log_bytes(&bytes))
}

/// Plays records in recorded time, scaled by a speed factor. The player
/// reads no clock: the caller passes the wall time elapsed.
#[derive(Clone, Debug)]
pub struct Player {
    records: Vec<Record>,
    next: usize,
    /// Recorded time reached, in nanoseconds since the first record.
    position_ns: u64,
    pub speed: f64,
    pub paused: bool,
}

impl Player {
    pub fn new(mut records: Vec<Record>, speed: f64) -> Self {
        // Records of one run are in order; a log that concatenates runs
        // could be out of order, and plays in file order then.
        if records.windows(2).any(|w| w[0].ts_ns > w[1].ts_ns) {
            log::warn!("replay: timestamps are not in order; playing in file order");
        }
        records.shrink_to_fit();
        Self {
            records,
            next: 0,
            position_ns: 0,
            speed,
            paused: false,
        }
    }

    fn origin_ns(&self) -> u64 {
        self.records.first().map_or(0, |r| r.ts_ns)
    }

    fn offset_of(&self, index: usize) -> u64 {
        self.records[index].ts_ns.saturating_sub(self.origin_ns())
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Records played so far.
    pub fn played(&self) -> usize {
        self.next
    }

    pub fn finished(&self) -> bool {
        self.next >= self.records.len()
    }

    /// Recorded time reached, in nanoseconds since the first record.
    pub fn position_ns(&self) -> u64 {
        self.position_ns
    }

    /// Total recorded time, in nanoseconds.
    pub fn duration_ns(&self) -> u64 {
        self.records
            .last()
            .map_or(0, |r| r.ts_ns.saturating_sub(self.origin_ns()))
    }

    /// Advances by `wall_ns` of real time (unless paused) and returns the
    /// records now due.
    pub fn advance(&mut self, wall_ns: u64) -> &[Record] {
        if !self.paused {
            let scaled = (wall_ns as f64 * self.speed) as u64;
            self.position_ns = self.position_ns.saturating_add(scaled);
        }
        let start = self.next;
        while self.next < self.records.len() && self.offset_of(self.next) <= self.position_ns {
            self.next += 1;
        }
        &self.records[start..self.next]
    }

    /// Plays the next record at once, paused or not.
    pub fn step(&mut self) -> &[Record] {
        let start = self.next;
        if self.next < self.records.len() {
            self.position_ns = self.position_ns.max(self.offset_of(self.next));
            self.next += 1;
        }
        &self.records[start..self.next]
    }

    /// Plays everything up to and including the next `transition_started`,
    /// so that the next transition can be watched from its start.
    pub fn jump_to_next_transition(&mut self) -> &[Record] {
        let start = self.next;
        while self.next < self.records.len() {
            let is_start = self.records[self.next].event.kind() == "transition_started";
            self.position_ns = self.position_ns.max(self.offset_of(self.next));
            self.next += 1;
            if is_start {
                break;
            }
        }
        &self.records[start..self.next]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    fn line(ts: u64, kind: &str) -> String {
        format!(r#"{{"v":1,"ts_ns":{ts},"kind":"{kind}","patch":"p","target":"patched"}}"#)
    }

    #[test]
    fn damaged_lines_skipped_with_reason() {
        let text = format!(
            "{}\nnot json\n{{\"v\":2,\"ts_ns\":1,\"kind\":\"x\"}}\n{{\"v\":1,\"ts_ns\":1,\"kind\":\"from_the_future\"}}\n\n{}\n",
            line(1, "transition_started"),
            line(2, "transition_reversed")
        );
        let recording = parse_log(&text);
        assert_eq!(recording.records.len(), 2);
        let lines: Vec<usize> = recording.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, vec![2, 3, 4]);
        assert!(recording.skipped[0].reason.starts_with("not JSON"));
        assert!(recording.skipped[1].reason.contains("version"));
    }

    #[test]
    fn non_utf8_line_skipped_others_kept() {
        let mut bytes = line(1, "transition_started").into_bytes();
        bytes.extend_from_slice(b"\n\xff\xfe garbage\n");
        bytes.extend_from_slice(line(2, "transition_reversed").as_bytes());
        let recording = parse_log_bytes(&bytes);
        assert_eq!(recording.records.len(), 2);
        assert_eq!(recording.skipped.len(), 1);
        assert_eq!(recording.skipped[0].line, 2);
        assert_eq!(recording.skipped[0].reason, "not UTF-8 text");
    }

    #[test]
    fn player_follows_scaled_time() {
        let text = [
            line(1_000, "transition_started"),
            line(2_001_000, "transition_reversed"),
        ]
        .join("\n");
        let mut player = Player::new(parse_log(&text).records, 2.0);
        assert_eq!(player.advance(0).len(), 1);
        assert_eq!(player.advance(999_000).len(), 0);
        assert_eq!(player.advance(1_000).len(), 1);
        assert!(player.finished());
    }

    #[test]
    fn paused_player_only_steps() {
        let text = [
            line(0, "transition_started"),
            line(5_000_000_000, "transition_reversed"),
        ]
        .join("\n");
        let mut player = Player::new(parse_log(&text).records, 1.0);
        player.paused = true;
        assert_eq!(player.advance(10_000_000_000).len(), 1);
        assert_eq!(player.advance(10_000_000_000).len(), 0);
        let stepped = player.step();
        assert!(matches!(stepped[0].event, Event::TransitionReversed { .. }));
    }

    #[test]
    fn jump_stops_after_next_start() {
        let text = [
            line(0, "transition_reversed"),
            line(10, "transition_started"),
            line(20, "transition_reversed"),
        ]
        .join("\n");
        let mut player = Player::new(parse_log(&text).records, 1.0);
        assert_eq!(player.jump_to_next_transition().len(), 2);
        assert_eq!(player.played(), 2);
    }
}
