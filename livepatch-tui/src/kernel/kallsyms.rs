//! Kernel symbols from `/proc/kallsyms` (addresses need root), to name the
//! frames of blocked tasks' stacks.

use std::collections::HashMap;

use anyhow::Context as _;

pub const KALLSYMS_PATH: &str = "/proc/kallsyms";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub address: u64,
    pub name: String,
    /// Module the symbol belongs to; `None` for vmlinux.
    pub module: Option<String>,
}

/// Text symbols by address.
#[derive(Debug, Default)]
pub struct Kallsyms {
    /// Several symbols can share an address: a live module's freed
    /// `__init` code stays listed while later modules reuse its memory.
    by_address: HashMap<u64, Vec<Symbol>>,
    /// Addresses of `by_address`, ascending, for nearest-symbol lookups.
    sorted: Vec<u64>,
}

impl Kallsyms {
    /// Parses kallsyms text; only text (`t`/`T`) symbols are kept.
    pub fn parse(text: &str) -> Self {
        let mut table = Kallsyms::default();
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            let (Some(address), Some(kind), Some(name)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if !matches!(kind, "t" | "T") {
                continue;
            }
            let Ok(address) = u64::from_str_radix(address, 16) else {
                continue;
            };
            let module = fields
                .next()
                .map(|m| m.trim_start_matches('[').trim_end_matches(']').to_owned());
            let symbol = Symbol {
                address,
                name: name.to_owned(),
                module,
            };
            table.by_address.entry(address).or_default().push(symbol);
        }
        table.sorted = table.by_address.keys().copied().collect();
        table.sorted.sort_unstable();
        table
    }

    /// Names a code address as `function+0xoffset [module]`, or in hex when
    /// no symbol lies below it.
    pub fn symbolize(&self, address: u64) -> String {
        let index = self.sorted.partition_point(|&start| start <= address);
        let Some(symbol) = index
            .checked_sub(1)
            .and_then(|i| self.by_address.get(&self.sorted[i]))
            .and_then(|symbols| symbols.last())
        else {
            return format!("{address:#x}");
        };
        let offset = address - symbol.address;
        match &symbol.module {
            Some(module) => format!("{}+{offset:#x} [{module}]", symbol.name),
            None => format!("{}+{offset:#x}", symbol.name),
        }
    }

    /// Reads the running kernel's symbols. Addresses read as zero without
    /// root (kptr_restrict), which is reported as an error.
    pub fn read() -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(KALLSYMS_PATH)
            .with_context(|| format!("failed to read {KALLSYMS_PATH}"))?;
        let table = Self::parse(&text);
        if table.by_address.len() <= 1 {
            anyhow::bail!("{KALLSYMS_PATH} shows no addresses: run as root (kernel.kptr_restrict)");
        }
        Ok(table)
    }

    /// Returns the symbol at `address`, preferring the latest one listed.
    pub fn symbol_at(&self, address: u64) -> Option<&Symbol> {
        self.by_address
            .get(&address)
            .and_then(|symbols| symbols.last())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
ffffffff81000000 T _text
ffffffff81100000 t cmdline_proc_show
ffffffff81200000 t dup
ffffffff81300000 t dup
ffffffffc0001000 t livepatch_cmdline_proc_show\t[livepatch_sample]
ffffffffc0002000 t busymod_work_func\t[test_klp_callbacks_busy]
ffffffff81400000 D some_data
";

    #[test]
    fn symbolize_names_nearest_symbol() {
        let table = Kallsyms::parse(TEXT);
        assert_eq!(
            table.symbolize(0xffffffff81100010),
            "cmdline_proc_show+0x10"
        );
        assert_eq!(
            table.symbolize(0xffffffffc0002004),
            "busymod_work_func+0x4 [test_klp_callbacks_busy]"
        );
        assert_eq!(table.symbolize(0x10), "0x10");
    }

    #[test]
    fn symbol_by_address_keeps_module() {
        let table = Kallsyms::parse(TEXT);
        let symbol = table.symbol_at(0xffffffffc0001000).unwrap();
        assert_eq!(symbol.name, "livepatch_cmdline_proc_show");
        assert_eq!(symbol.module.as_deref(), Some("livepatch_sample"));
        assert!(
            table.symbol_at(0xffffffff81400000).is_none(),
            "data is left out"
        );
    }
}
