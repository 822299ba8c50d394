//! Number and time formats shared by the panes.

use crate::model::Task;

/// Formats a duration with a unit that keeps it short: `850 µs`, `12.3 ms`,
/// `4.52 s`, `3m 05s`, `1h 02m`.
pub fn duration_ns(ns: u64) -> String {
    const MS: u64 = 1_000_000;
    const S: u64 = 1_000 * MS;

    if ns < MS {
        format!("{} µs", ns / 1_000)
    } else if ns < S {
        format!("{:.1} ms", ns as f64 / MS as f64)
    } else if ns < 60 * S {
        format!("{:.2} s", ns as f64 / S as f64)
    } else if ns < 3_600 * S {
        let secs = ns / S;
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        let mins = ns / S / 60;
        format!("{}h {:02}m", mins / 60, mins % 60)
    }
}

/// Formats milliseconds as [`duration_ns`] does.
pub fn duration_ms(ms: f64) -> String {
    duration_ns((ms.max(0.0) * 1e6) as u64)
}

/// Formats a time relative to a base as `+4.52 s`.
pub fn offset_ns(ts_ns: u64, base_ns: u64) -> String {
    if ts_ns >= base_ns {
        format!("+{}", duration_ns(ts_ns - base_ns))
    } else {
        format!("-{}", duration_ns(base_ns - ts_ns))
    }
}

/// Formats a CLOCK_MONOTONIC timestamp in seconds, as `dmesg` prints it.
pub fn monotonic(ts_ns: u64) -> String {
    format!(
        "{:>5}.{:06}",
        ts_ns / 1_000_000_000,
        ts_ns % 1_000_000_000 / 1_000
    )
}

/// Formats a count with thousands separators: `10,000`.
pub fn count(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Formats a count and a noun, plural unless the count is one: `1 pass`,
/// `2 passes`.
pub fn plural(value: u64, noun: &str) -> String {
    let suffix = match (value, noun.ends_with('s')) {
        (1, _) => "",
        (_, true) => "es",
        (_, false) => "s",
    };
    format!("{} {noun}{suffix}", count(value))
}

/// Formats how long a task has waited since its first failed check, or `—`
/// for a task that never failed one.
pub fn waited(task: &Task, now_ns: u64) -> String {
    match task.first_tried_ns {
        Some(_) => duration_ns(task.waited_ns(now_ns)),
        None => "—".to_owned(),
    }
}

/// Formats a replay speed factor: `2×`, `0.25×`.
pub fn speed(factor: f64) -> String {
    if factor.fract() == 0.0 {
        format!("{factor:.0}×")
    } else {
        format!("{factor}×")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_a_unit() {
        assert_eq!(duration_ns(850_000), "850 µs");
        assert_eq!(duration_ns(12_300_000), "12.3 ms");
        assert_eq!(duration_ns(4_520_000_000), "4.52 s");
        assert_eq!(duration_ns(185_000_000_000), "3m 05s");
        assert_eq!(duration_ns(3_720_000_000_000), "1h 02m");
    }

    #[test]
    fn counts_have_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(10_000), "10,000");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn monotonic_like_dmesg() {
        assert_eq!(monotonic(12_345_678_901), "   12.345678");
    }

    #[test]
    fn plural_only_when_not_one() {
        assert_eq!(plural(1, "pass"), "1 pass");
        assert_eq!(plural(2, "pass"), "2 passes");
        assert_eq!(plural(0, "attempt"), "0 attempts");
        assert_eq!(plural(1_000, "function"), "1,000 functions");
    }

    #[test]
    fn speed_without_needless_decimals() {
        assert_eq!(speed(2.0), "2×");
        assert_eq!(speed(0.25), "0.25×");
    }
}
