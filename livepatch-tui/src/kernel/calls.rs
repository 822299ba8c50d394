//! Counting calls to each patched function: kprobes on the original
//! function's entry, which every call passes before the livepatch ftrace
//! handler redirects it, and on each patch's replacement.
//!
//! `klp_ftrace_handler` itself is `notrace`, and distribution kernels refuse
//! kprobes on it, so the split is derived: calls that reached no replacement
//! ran the original.

use std::collections::{BTreeMap, HashMap};

use aya::{
    Ebpf,
    maps::{MapData, PerCpuHashMap},
    programs::{KProbe, kprobe::KProbeLinkId},
};

use super::kallsyms::Kallsyms;
use crate::event::Event;

/// Program name of the counter in the eBPF object.
const PROGRAM: &str = "count_call";

/// A patched function: (object, function, sympos).
type FunctionKey = (String, String, u32);

#[derive(Debug)]
struct Tracked {
    /// Address of the original function's entry, or why it is not counted.
    original: Result<u64, String>,
    /// Replacement address per patch, or why it is not counted.
    versions: BTreeMap<String, Result<u64, String>>,
}

impl Tracked {
    fn new() -> Self {
        Self {
            original: Err("not resolved yet".into()),
            versions: BTreeMap::new(),
        }
    }
}

/// A function a patch replaces, and the address of its replacement.
#[derive(Clone, Debug)]
pub struct ReplacedFunction {
    pub patch: String,
    pub object: String,
    pub function: String,
    pub sympos: u32,
    pub new_func: u64,
}

/// Attaches and detaches the counters as patches come and go, and turns the
/// kernel's running totals into per-interval `calls` events.
pub struct CallCounter {
    counts: PerCpuHashMap<MapData, u64, u64>,
    links: HashMap<u64, KProbeLinkId>,
    functions: BTreeMap<FunctionKey, Tracked>,
    /// Running total per address at the previous flush.
    previous: HashMap<u64, u64>,
    previous_flush_ns: u64,
}

impl CallCounter {
    /// Loads the counter program and takes its map. Attaches nothing yet.
    pub fn new(ebpf: &mut Ebpf, now_ns: u64) -> anyhow::Result<Self> {
        let program: &mut KProbe = ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| anyhow::anyhow!("program {PROGRAM} missing from the eBPF object"))?
            .try_into()?;
        program.load()?;
        let map = ebpf
            .take_map("CALLS")
            .ok_or_else(|| anyhow::anyhow!("map CALLS missing from the eBPF object"))?;
        Ok(Self {
            counts: PerCpuHashMap::try_from(map)?,
            links: HashMap::new(),
            functions: BTreeMap::new(),
            previous: HashMap::new(),
            previous_flush_ns: now_ns,
        })
    }

    /// Starts counting one function of a patch that is being enabled.
    pub fn track(&mut self, ebpf: &mut Ebpf, kallsyms: &Kallsyms, replaced: &ReplacedFunction) {
        let ReplacedFunction {
            patch,
            object,
            function,
            sympos,
            new_func,
        } = replaced;
        let (sympos, new_func) = (*sympos, *new_func);
        let key = (object.to_owned(), function.to_owned(), sympos);
        let original = kallsyms.resolve(object, function, sympos);
        let original = match original {
            Ok(address) => {
                let module = (object != "vmlinux").then_some(object.as_str());
                self.attach(ebpf, kallsyms, address, module)
                    .map(|()| address)
            }
            Err(reason) => Err(reason),
        };
        let version = self
            .attach(ebpf, kallsyms, new_func, Some(patch.as_str()))
            .map(|()| new_func);
        if let Err(reason) = &version {
            log::warn!("calls to {patch}'s {object}:{function} not counted: {reason}");
        }

        let tracked = self.functions.entry(key).or_insert_with(Tracked::new);
        if tracked.original.is_err() {
            tracked.original = original;
        }
        tracked.versions.insert(patch.to_owned(), version);
    }

    /// Stops counting the replacements of a removed patch, and the original
    /// of functions no other patch replaces.
    pub fn untrack_patch(&mut self, ebpf: &mut Ebpf, patch: &str) {
        let mut detach = Vec::new();
        self.functions.retain(|_, tracked| {
            if let Some(Ok(address)) = tracked.versions.remove(patch) {
                detach.push(address);
            }
            if tracked.versions.is_empty() {
                if let Ok(address) = tracked.original {
                    detach.push(address);
                }
                return false;
            }
            true
        });
        for address in detach {
            self.detach(ebpf, address);
        }
    }

    /// Events for the calls since the previous flush; functions without
    /// calls are left out.
    pub fn flush(&mut self, now_ns: u64) -> Vec<Event> {
        let totals = self.read_totals();
        let interval_ms = now_ns.saturating_sub(self.previous_flush_ns) / 1_000_000;
        self.previous_flush_ns = now_ns;

        let mut events = Vec::new();
        for ((object, function, sympos), tracked) in &self.functions {
            let delta = |address: u64| {
                let total = totals.get(&address).copied().unwrap_or(0);
                total.saturating_sub(self.previous.get(&address).copied().unwrap_or(0))
            };
            let entered = tracked.original.as_ref().map(|&a| delta(a)).unwrap_or(0);
            let patched: BTreeMap<String, u64> = tracked
                .versions
                .iter()
                .filter_map(|(patch, address)| {
                    address.as_ref().ok().map(|&a| (patch.clone(), delta(a)))
                })
                .collect();
            let reached: u64 = patched.values().sum();
            if entered == 0 && reached == 0 {
                continue;
            }
            events.push(Event::Calls {
                object: object.clone(),
                function: function.clone(),
                sympos: *sympos,
                entered,
                original: entered.saturating_sub(reached),
                patched,
                interval_ms,
                blind_spot: blind_spot(tracked, entered, reached),
            });
        }
        self.previous = totals;
        events
    }

    fn read_totals(&self) -> HashMap<u64, u64> {
        let mut totals = HashMap::new();
        for entry in self.counts.iter() {
            match entry {
                Ok((address, per_cpu)) => {
                    totals.insert(address, per_cpu.iter().sum());
                }
                Err(error) => log::warn!("call counter unreadable: {error}"),
            }
        }
        totals
    }

    /// Attaches the counter at `address`, a function of `module` (`None`:
    /// vmlinux).
    fn attach(
        &mut self,
        ebpf: &mut Ebpf,
        kallsyms: &Kallsyms,
        address: u64,
        module: Option<&str>,
    ) -> Result<(), String> {
        if self.links.contains_key(&address) {
            return Ok(());
        }
        let symbol = kallsyms.symbol_at_in(address, module).ok_or_else(|| {
            format!(
                "no symbol of {} at {address:#x}",
                module.unwrap_or("vmlinux")
            )
        })?;
        if !kallsyms.is_unique(&symbol.name) {
            return Err(format!(
                "{} is not a unique symbol name, so no kprobe can name it",
                symbol.name
            ));
        }
        let name = symbol.name.clone();
        let program: &mut KProbe = program(ebpf)?;
        let link = program
            .attach(&name, 0)
            .map_err(|e| format!("kprobe on {name} failed: {e}"))?;
        self.links.insert(address, link);
        Ok(())
    }

    fn detach(&mut self, ebpf: &mut Ebpf, address: u64) {
        let Some(link) = self.links.remove(&address) else {
            return;
        };
        let result = program(ebpf).and_then(|p| p.detach(link).map_err(|e| e.to_string()));
        if let Err(error) = result {
            log::warn!("kprobe at {address:#x} not detached: {error}");
        }
    }
}

fn program(ebpf: &mut Ebpf) -> Result<&mut KProbe, String> {
    ebpf.program_mut(PROGRAM)
        .ok_or_else(|| format!("program {PROGRAM} missing"))?
        .try_into()
        .map_err(|e| format!("{e}"))
}

/// Returns why the counts of a function cannot be trusted, if they cannot.
fn blind_spot(tracked: &Tracked, entered: u64, reached: u64) -> Option<String> {
    if let Err(reason) = &tracked.original {
        return Some(format!("original entry not counted: {reason}"));
    }
    if let Some((patch, Err(reason))) = tracked.versions.iter().find(|(_, v)| v.is_err()) {
        return Some(format!("{patch}'s replacement not counted: {reason}"));
    }
    // Every call enters the original first, so more replacement calls than
    // entries mean the entry probe missed calls.
    (reached > entered)
        .then(|| format!("original entry saw {entered} calls but replacements saw {reached}"))
}
