//! Reading the tool's JSON Lines log (event contract version 1) for the lab's checks.

use serde_json::Value;

/// Parsed log: the events in file order, and the lines that are not valid events.
pub struct EventLog {
    pub events: Vec<Value>,
    /// (line number, reason) for each line that is not a JSON object with `"v":1`,
    /// a numeric `ts_ns` and a string `kind`.
    pub invalid: Vec<(usize, String)>,
}

impl EventLog {
    pub fn parse(text: &str) -> Self {
        let mut events = Vec::new();
        let mut invalid = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(line) {
                Ok(event) => match validate(&event) {
                    Ok(()) => events.push(event),
                    Err(reason) => invalid.push((index + 1, reason)),
                },
                Err(error) => invalid.push((index + 1, format!("invalid JSON: {error}"))),
            }
        }
        Self { events, invalid }
    }

    pub fn of_kind<'a>(&'a self, kind: &str) -> impl Iterator<Item = &'a Value> {
        self.events
            .iter()
            .filter(move |event| text(event, "kind") == Some(kind))
    }

    /// First event of `kind` whose string fields equal the given values.
    pub fn find(&self, kind: &str, fields: &[(&str, &str)]) -> Option<&Value> {
        self.of_kind(kind).find(|event| {
            fields
                .iter()
                .all(|(key, value)| text(event, key) == Some(value))
        })
    }
}

fn validate(event: &Value) -> Result<(), String> {
    if !event.is_object() {
        return Err("not a JSON object".to_owned());
    }
    if event.get("v").and_then(Value::as_u64) != Some(1) {
        return Err(format!(
            "\"v\" is {}, expected 1",
            field_or_missing(event, "v")
        ));
    }
    if event.get("ts_ns").and_then(Value::as_u64).is_none() {
        return Err(format!(
            "\"ts_ns\" is {}, expected an unsigned integer",
            field_or_missing(event, "ts_ns")
        ));
    }
    if text(event, "kind").is_none() {
        return Err(format!(
            "\"kind\" is {}, expected a string",
            field_or_missing(event, "kind")
        ));
    }
    Ok(())
}

fn field_or_missing(event: &Value, key: &str) -> String {
    event
        .get(key)
        .map_or("missing".to_owned(), Value::to_string)
}

/// String field of an event.
pub fn text<'a>(event: &'a Value, key: &str) -> Option<&'a str> {
    event.get(key).and_then(Value::as_str)
}

/// Event timestamp in nanoseconds (CLOCK_MONOTONIC); 0 if missing.
pub fn ts_ns(event: &Value) -> u64 {
    event.get("ts_ns").and_then(Value::as_u64).unwrap_or(0)
}

/// Finds the patch named `name` in an `inventory` event.
pub fn inventory_patch<'a>(inventory: &'a Value, name: &str) -> Option<&'a Value> {
    inventory
        .get("patches")?
        .as_array()?
        .iter()
        .find(|patch| text(patch, "name") == Some(name))
}

/// Returns whether an inventory patch lists `function` under its object `object`.
pub fn patch_has_function(patch: &Value, object: &str, function: &str) -> bool {
    let Some(objects) = patch.get("objects").and_then(Value::as_array) else {
        return false;
    };
    objects
        .iter()
        .filter(|entry| text(entry, "name") == Some(object))
        .filter_map(|entry| entry.get("functions").and_then(Value::as_array))
        .flatten()
        .any(|entry| text(entry, "name") == Some(function))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reports_invalid_lines() {
        let log = EventLog::parse(
            "{\"v\":1,\"ts_ns\":5,\"kind\":\"inventory\",\"patches\":[]}\n\
             not json\n\
             {\"v\":2,\"ts_ns\":6,\"kind\":\"x\"}\n\
             {\"v\":1,\"kind\":\"x\"}\n",
        );
        assert_eq!(log.events.len(), 1);
        let lines: Vec<usize> = log.invalid.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert!(log.invalid[1].1.contains("expected 1"));
        assert!(log.invalid[2].1.contains("ts_ns"));
    }

    #[test]
    fn find_matches_all_fields() {
        let log = EventLog::parse(
            "{\"v\":1,\"ts_ns\":1,\"kind\":\"transition_started\",\"patch\":\"a\",\"target\":\"unpatched\"}\n\
             {\"v\":1,\"ts_ns\":2,\"kind\":\"transition_started\",\"patch\":\"a\",\"target\":\"patched\"}\n",
        );
        let event = log
            .find(
                "transition_started",
                &[("patch", "a"), ("target", "patched")],
            )
            .expect("event with both fields");
        assert_eq!(ts_ns(event), 2);
        assert!(log.find("transition_started", &[("patch", "b")]).is_none());
    }

    #[test]
    fn patch_has_function_checks_object() {
        let inventory: Value = serde_json::from_str(
            r#"{"patches":[{"name":"livepatch_sample","objects":[
                {"name":"vmlinux","patched":true,"functions":[{"name":"cmdline_proc_show","sympos":0}]}]}]}"#,
        )
        .unwrap();
        let patch = inventory_patch(&inventory, "livepatch_sample").expect("patch listed");
        assert!(patch_has_function(patch, "vmlinux", "cmdline_proc_show"));
        assert!(!patch_has_function(patch, "other", "cmdline_proc_show"));
        assert!(inventory_patch(&inventory, "missing").is_none());
    }
}
