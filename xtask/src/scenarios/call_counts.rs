//! Sums of the tool's `calls` events for one function over a time window.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::events::{self, EventLog, ts_ns};

/// Sum of the `calls` events of one function.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CallSum {
    pub events: usize,
    pub entered: u64,
    pub original: u64,
    /// Calls per patch, without patches that got none.
    pub patched: BTreeMap<String, u64>,
    /// The `blind_spot` values that were not null.
    pub blind_spots: Vec<String>,
}

impl CallSum {
    /// Builds the sum the checks expect: `original` calls to the original, and the given
    /// calls per patch.
    pub fn expected(original: u64, patched: &[(&str, u64)]) -> Self {
        let patched: BTreeMap<String, u64> = patched
            .iter()
            .filter(|(_, count)| *count > 0)
            .map(|(patch, count)| (patch.to_string(), *count))
            .collect();
        Self {
            events: 0,
            entered: original + patched.values().sum::<u64>(),
            original,
            patched,
            blind_spots: Vec::new(),
        }
    }

    /// Returns whether the counts equal `other`'s, ignoring the number of events.
    pub fn same_counts(&self, other: &CallSum) -> bool {
        self.entered == other.entered
            && self.original == other.original
            && self.patched == other.patched
            && self.blind_spots == other.blind_spots
    }
}

impl fmt::Display for CallSum {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "entered {}, original {}, patched {:?}",
            self.entered, self.original, self.patched
        )?;
        if !self.blind_spots.is_empty() {
            write!(formatter, ", blind_spot {:?}", self.blind_spots)?;
        }
        if self.events > 0 {
            write!(formatter, " over {} event(s)", self.events)?;
        }
        Ok(())
    }
}

/// Sums the `calls` events of `function` with `from_ns < ts_ns <= to_ns`.
pub fn sum_calls(log: &EventLog, function: &str, from_ns: u64, to_ns: u64) -> CallSum {
    let mut sum = CallSum::default();
    let in_window = log
        .of_kind("calls")
        .filter(|event| events::text(event, "function") == Some(function))
        .filter(|event| from_ns < ts_ns(event) && ts_ns(event) <= to_ns);
    for event in in_window {
        sum.events += 1;
        sum.entered += count(event, "entered");
        sum.original += count(event, "original");
        if let Some(patched) = event.get("patched").and_then(Value::as_object) {
            for (patch, calls) in patched {
                let calls = calls.as_u64().unwrap_or(0);
                if calls > 0 {
                    *sum.patched.entry(patch.clone()).or_default() += calls;
                }
            }
        }
        if let Some(reason) = events::text(event, "blind_spot") {
            sum.blind_spots.push(reason.to_owned());
        }
    }
    sum
}

fn count(event: &Value, key: &str) -> u64 {
    event.get(key).and_then(Value::as_u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_calls_window_and_zero_patches() {
        let log = EventLog::parse(
            "{\"v\":1,\"ts_ns\":10,\"kind\":\"calls\",\"function\":\"f\",\"entered\":5,\"original\":5,\"patched\":{\"a\":0},\"blind_spot\":null}\n\
             {\"v\":1,\"ts_ns\":20,\"kind\":\"calls\",\"function\":\"f\",\"entered\":7,\"original\":2,\"patched\":{\"a\":5},\"blind_spot\":null}\n\
             {\"v\":1,\"ts_ns\":20,\"kind\":\"calls\",\"function\":\"g\",\"entered\":1,\"original\":0,\"patched\":{\"a\":1},\"blind_spot\":null}\n\
             {\"v\":1,\"ts_ns\":30,\"kind\":\"calls\",\"function\":\"f\",\"entered\":3,\"original\":0,\"patched\":{\"b\":3},\"blind_spot\":\"x\"}\n",
        );
        let sum = sum_calls(&log, "f", 10, 30);
        assert_eq!(sum.events, 2);
        assert_eq!(sum.entered, 10);
        assert_eq!(sum.original, 2);
        assert_eq!(
            sum.patched,
            BTreeMap::from([("a".to_owned(), 5), ("b".to_owned(), 3)])
        );
        assert_eq!(sum.blind_spots, vec!["x"]);
        assert!(!sum.same_counts(&CallSum::expected(2, &[("a", 5), ("b", 3)])));
        assert!(
            sum_calls(&log, "f", 0, 20).same_counts(&CallSum::expected(7, &[("a", 5), ("c", 0)]))
        );
    }
}
