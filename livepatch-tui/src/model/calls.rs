//! Call counts per patched function and version: which code runs.

use std::collections::BTreeMap;

/// Totals and the latest interval of one patched function.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallStats {
    pub entered_total: u64,
    pub original_total: u64,
    pub patched_total: BTreeMap<String, u64>,
    /// The latest interval's counts and length.
    pub last_original: u64,
    pub last_patched: BTreeMap<String, u64>,
    pub last_interval_ms: u64,
    pub blind_spot: Option<String>,
}

impl CallStats {
    pub fn add(
        &mut self,
        entered: u64,
        original: u64,
        patched: &BTreeMap<String, u64>,
        interval_ms: u64,
        blind_spot: Option<&str>,
    ) {
        self.entered_total += entered;
        self.original_total += original;
        for (patch, count) in patched {
            *self.patched_total.entry(patch.clone()).or_default() += count;
        }
        self.last_original = original;
        self.last_patched.clone_from(patched);
        self.last_interval_ms = interval_ms;
        self.blind_spot = blind_spot.map(str::to_owned);
    }

    /// Share of the latest interval's calls that ran any patch's code, 0 to 1.
    pub fn last_patched_share(&self) -> Option<f64> {
        let patched: u64 = self.last_patched.values().sum();
        let total = patched + self.last_original;
        (total > 0).then(|| patched as f64 / total as f64)
    }
}

/// Key of a patched function in the model: `object:function,sympos`.
pub fn function_label(object: &str, function: &str, sympos: u32) -> String {
    format!("{object}:{function},{sympos}")
}
