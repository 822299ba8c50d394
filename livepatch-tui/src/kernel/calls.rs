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

use crate::event::Event;

/// Program name of the counter in the eBPF object.
const PROGRAM: &str = "count_call";

/// Reads of the counters per report, at most, while calls keep arriving.
const SETTLE_READS: u32 = 5;

/// Time between two reads of the counters: far longer than a call takes
/// from its original's entry to its replacement's.
const IN_FLIGHT: std::time::Duration = std::time::Duration::from_millis(1);

/// A patched function: (object, function, sympos).
type FunctionKey = (String, String, u32);

#[derive(Debug)]
struct Tracked {
    /// Address of the original function's entry, or why it is not counted.
    original: Result<u64, String>,
    /// Replacement address per patch, or why it is not counted.
    versions: BTreeMap<String, Result<u64, String>>,
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

/// Attaches and detaches the counters as patches and their target modules
/// come and go, and turns the kernel's running totals into per-interval
/// `calls` events.
///
/// Counters attach by address, from the addresses the kernel itself uses,
/// so they need no symbol lookup and start within one read of the ring
/// buffer, before the patch's transition gets far.
pub struct CallCounter {
    counts: PerCpuHashMap<MapData, u64, u64>,
    links: HashMap<u64, KProbeLinkId>,
    functions: BTreeMap<FunctionKey, Tracked>,
    /// The function each replacement address belongs to.
    by_replacement: HashMap<u64, FunctionKey>,
    /// Functions whose original entry counted calls while a new patch's
    /// replacement got its counter: the patch, and those calls. Some may
    /// have run the replacement unseen.
    late_versions: HashMap<FunctionKey, (String, u64)>,
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
            by_replacement: HashMap::new(),
            late_versions: HashMap::new(),
            previous: HashMap::new(),
            previous_flush_ns: now_ns,
        })
    }

    /// Starts counting the replacement of one function of a patch being
    /// enabled. The original follows when the kernel patches its object
    /// ([`CallCounter::locate`]).
    pub fn track(&mut self, ebpf: &mut Ebpf, replaced: &ReplacedFunction) {
        let ReplacedFunction {
            patch,
            object,
            function,
            sympos,
            new_func,
        } = replaced;
        let key = (object.to_owned(), function.to_owned(), *sympos);
        let counted_original = self
            .functions
            .get(&key)
            .and_then(|tracked| tracked.original.as_ref().ok().copied());
        let entered_before = counted_original.map(|original| self.read_total(original));
        let label = format!("{patch}'s replacement of {object}:{function}");
        let version = self.attach(ebpf, *new_func, &label).map(|()| *new_func);
        if let Err(reason) = &version {
            log::warn!("calls to {label} not counted: {reason}");
        }
        self.by_replacement.insert(*new_func, key.clone());
        let tracked = self
            .functions
            .entry(key.clone())
            .or_insert_with(|| Tracked {
                original: Err(not_loaded(object)),
                versions: BTreeMap::new(),
            });
        tracked.versions.insert(patch.to_owned(), version);
        // The kernel may send calls to the replacement before its counter
        // attaches: user space learns of the patch only as its load runs.
        if let (Some(original), Some(before)) = (counted_original, entered_before) {
            let entered = self.read_total(original).saturating_sub(before);
            if entered > 0 {
                self.late_versions.insert(key, (patch.to_owned(), entered));
            }
        }
    }

    /// Starts counting the original of the function replaced at `new_func`,
    /// which the kernel found at `old_func` while patching its object.
    pub fn locate(&mut self, ebpf: &mut Ebpf, old_func: u64, new_func: u64) {
        let Some(key) = self.by_replacement.get(&new_func).cloned() else {
            return;
        };
        let Some(tracked) = self.functions.get(&key) else {
            return;
        };
        if tracked.original.is_ok() {
            return;
        }
        let (object, function, _) = &key;
        let original = if old_func == 0 {
            Err("the kernel did not report where the original is".to_owned())
        } else {
            let label = format!("original {object}:{function}");
            self.attach(ebpf, old_func, &label).map(|()| old_func)
        };
        if let Err(reason) = &original {
            log::warn!("calls to {object}:{function} not counted: {reason}");
        }
        if let Some(tracked) = self.functions.get_mut(&key) {
            tracked.original = original;
        }
    }

    /// Stops counting the originals in a module that is unloading; they
    /// are counted again when it loads and the kernel patches it.
    pub fn object_going(&mut self, ebpf: &mut Ebpf, object: &str) {
        let mut detach = Vec::new();
        for ((name, _, _), tracked) in self.functions.iter_mut() {
            if name != object {
                continue;
            }
            if let Ok(address) = tracked.original {
                detach.push(address);
            }
            tracked.original = Err(not_loaded(object));
        }
        for address in detach {
            self.detach(ebpf, address);
        }
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
        let functions = &self.functions;
        self.by_replacement
            .retain(|_, key| functions.contains_key(key));
        for address in detach {
            self.detach(ebpf, address);
        }
    }

    /// Events for the calls since the previous flush; functions without
    /// calls are left out.
    pub fn flush(&mut self, now_ns: u64) -> Vec<Event> {
        let totals = self.read_settled_totals();
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
            let key = (object.clone(), function.clone(), *sympos);
            let unattributed = self.late_versions.get(&key).map(|(patch, entered)| {
                format!(
                    "{entered} or more calls entered while {patch}'s replacement had no counter yet; those that ran it count as the original's"
                )
            });
            events.push(Event::Calls {
                object: object.clone(),
                function: function.clone(),
                sympos: *sympos,
                entered,
                original: entered.saturating_sub(reached),
                patched,
                interval_ms,
                blind_spot: blind_spot(tracked, entered, reached).or(unattributed),
            });
        }
        self.late_versions.clear();
        self.previous = totals;
        events
    }

    /// Reads the totals until two reads [`IN_FLIGHT`] apart agree, at most
    /// [`SETTLE_READS`] times. A call counted at its original's entry but
    /// not yet at its replacement would otherwise be split over two
    /// reports, one with more replacement calls than entries.
    fn read_settled_totals(&self) -> HashMap<u64, u64> {
        let mut totals = self.read_totals();
        for _ in 1..SETTLE_READS {
            std::thread::sleep(IN_FLIGHT);
            let again = self.read_totals();
            if again == totals {
                break;
            }
            totals = again;
        }
        totals
    }

    /// Calls counted at `address` so far, on all CPUs.
    fn read_total(&self, address: u64) -> u64 {
        self.counts
            .get(&address, 0)
            .map(|per_cpu| per_cpu.iter().sum())
            .unwrap_or(0)
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

    /// Attaches the counter at `address`, the entry of what `label` names.
    fn attach(&mut self, ebpf: &mut Ebpf, address: u64, label: &str) -> Result<(), String> {
        if self.links.contains_key(&address) {
            return Ok(());
        }
        let program: &mut KProbe = program(ebpf)?;
        // An empty name makes the kernel place the kprobe at the address
        // given as offset (perf_event_attr.kprobe_addr), which also reaches
        // functions whose name is not unique.
        let link = program
            .attach("", address)
            .map_err(|e| format!("kprobe at {address:#x} ({label}) failed: {e}"))?;
        log::debug!(
            "counting calls at {address:#x} ({label}) since {} ns",
            super::live::monotonic_ns()
        );
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

fn not_loaded(object: &str) -> String {
    if object == "vmlinux" {
        "the kernel has not patched it yet".to_owned()
    } else {
        format!("module {object} is not loaded")
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
