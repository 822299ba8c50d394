//! Kernel symbols from `/proc/kallsyms` (addresses need root), to find a
//! patched function's address and the symbol of a replacement.

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

/// Text symbols, by name and by address.
#[derive(Debug, Default)]
pub struct Kallsyms {
    by_name: HashMap<String, Vec<Symbol>>,
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
            table
                .by_address
                .entry(address)
                .or_default()
                .push(symbol.clone());
            table
                .by_name
                .entry(symbol.name.clone())
                .or_default()
                .push(symbol);
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

    /// Address of `name` in `object` ("vmlinux" or a module), picking the
    /// `sympos`-th symbol of that name when there are several (1-based, as
    /// `klp_func.old_sympos`; 0 means the name must be unique).
    pub fn resolve(&self, object: &str, name: &str, sympos: u32) -> Result<u64, String> {
        let module = (object != "vmlinux").then_some(object);
        let candidates: Vec<&Symbol> = self
            .by_name
            .get(name)
            .map(|symbols| {
                symbols
                    .iter()
                    .filter(|s| s.module.as_deref() == module)
                    .collect()
            })
            .unwrap_or_default();
        match (candidates.len(), sympos) {
            (0, _) => Err(format!("{object}:{name} is not in kallsyms")),
            (1, 0 | 1) => Ok(candidates[0].address),
            (count, 0) => Err(format!("{object}:{name} has {count} symbols and no sympos")),
            (count, position) => candidates
                .get(position as usize - 1)
                .map(|s| s.address)
                .ok_or_else(|| format!("{object}:{name} has {count} symbols, not {position}")),
        }
    }

    /// Returns the symbol at `address`, preferring the latest one listed.
    pub fn symbol_at(&self, address: u64) -> Option<&Symbol> {
        self.by_address
            .get(&address)
            .and_then(|symbols| symbols.last())
    }

    /// Returns the symbol at `address` that belongs to `module` (`None`:
    /// vmlinux).
    pub fn symbol_at_in(&self, address: u64, module: Option<&str>) -> Option<&Symbol> {
        self.by_address
            .get(&address)?
            .iter()
            .rev()
            .find(|symbol| symbol.module.as_deref() == module)
    }

    /// Returns whether only one text symbol has this name, so a kprobe can
    /// name it.
    pub fn is_unique(&self, name: &str) -> bool {
        self.by_name
            .get(name)
            .is_some_and(|symbols| symbols.len() == 1)
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
    fn resolves_vmlinux_and_module_symbols() {
        let table = Kallsyms::parse(TEXT);
        assert_eq!(
            table.resolve("vmlinux", "cmdline_proc_show", 0),
            Ok(0xffffffff81100000)
        );
        assert_eq!(
            table.resolve("test_klp_callbacks_busy", "busymod_work_func", 0),
            Ok(0xffffffffc0002000)
        );
        assert!(table.resolve("vmlinux", "busymod_work_func", 0).is_err());
        assert!(
            table.resolve("vmlinux", "some_data", 0).is_err(),
            "data symbols are not functions"
        );
    }

    #[test]
    fn sympos_picks_among_duplicates() {
        let table = Kallsyms::parse(TEXT);
        assert_eq!(table.resolve("vmlinux", "dup", 2), Ok(0xffffffff81300000));
        let error = table.resolve("vmlinux", "dup", 0).unwrap_err();
        assert!(error.contains("no sympos"), "{error}");
        assert!(table.resolve("vmlinux", "dup", 3).is_err());
    }

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
    fn shared_address_resolved_by_module() {
        let text = "ffffffffc0001000 t init_module\t[old_patch]\nffffffffc0001000 t new_func\t[new_patch]\n";
        let table = Kallsyms::parse(text);
        let symbol = table
            .symbol_at_in(0xffffffffc0001000, Some("new_patch"))
            .unwrap();
        assert_eq!(symbol.name, "new_func");
        assert!(table.symbol_at_in(0xffffffffc0001000, None).is_none());
    }

    #[test]
    fn symbol_by_address_keeps_module() {
        let table = Kallsyms::parse(TEXT);
        let symbol = table.symbol_at(0xffffffffc0001000).unwrap();
        assert_eq!(symbol.name, "livepatch_cmdline_proc_show");
        assert_eq!(symbol.module.as_deref(), Some("livepatch_sample"));
        assert!(table.is_unique("livepatch_cmdline_proc_show"));
        assert!(!table.is_unique("dup"));
    }
}
