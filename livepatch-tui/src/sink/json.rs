//! The JSON Lines writer of the headless log.

use std::io::Write;

use anyhow::Context as _;

use crate::event::Record;

/// Writes one record per line and flushes each, so that a reader tailing
/// the file, or a crash, never sees half a line.
pub struct JsonLinesWriter<W: Write> {
    out: W,
    lines: u64,
}

impl<W: Write> JsonLinesWriter<W> {
    pub fn new(out: W) -> Self {
        Self { out, lines: 0 }
    }

    pub fn write(&mut self, record: &Record) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(record).context("failed to encode event")?;
        line.push(b'\n');
        self.out
            .write_all(&line)
            .context("failed to write the log")?;
        self.out.flush().context("failed to flush the log")?;
        self.lines += 1;
        Ok(())
    }

    pub fn lines(&self) -> u64 {
        self.lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    #[test]
    fn one_line_per_record() {
        let mut writer = JsonLinesWriter::new(Vec::new());
        writer
            .write(&Record::new(1, Event::EventsLost { count: 2 }))
            .unwrap();
        writer
            .write(&Record::new(2, Event::PatchAdded { patch: "p".into() }))
            .unwrap();
        let text = String::from_utf8(writer.out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            r#"{"v":1,"ts_ns":1,"kind":"events_lost","count":2}"#
        );
    }
}
