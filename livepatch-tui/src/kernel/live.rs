//! The live source: the probes' ring buffer, the lost-event counter and the
//! sysfs inventory, merged into one stream of records.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    time::Duration,
};

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray, RingBuf},
};
use aya_log::EbpfLogger;
use tokio::{
    io::unix::AsyncFd,
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use super::{
    btf::Btf,
    calls::{CallCounter, ReplacedFunction},
    decode::Decoder,
    kallsyms::Kallsyms,
    offsets, preflight, probes, sysfs,
};
use crate::{
    cli::LiveOptions,
    event::{Event, PatchInfo, PatchState, Record, StateInfo},
};

/// Records waiting for the consumer. When it falls behind, the reader stops
/// draining, the kernel's ring buffer fills, and the kernel counts what it
/// drops; the transition itself never waits.
const CHANNEL_CAPACITY: usize = 16 * 1024;

/// How often the kernel's lost-event counter is read.
const LOST_INTERVAL: Duration = Duration::from_secs(1);

/// CLOCK_MONOTONIC now, in nanoseconds: the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// A running live source. Dropping the receiver stops it and detaches the
/// probes; [`LiveSource::request_stop`] first sends what it still holds.
pub struct LiveSource {
    pub records: mpsc::Receiver<Record>,
    stop: Option<oneshot::Sender<()>>,
}

impl LiveSource {
    /// Checks the machine, loads and attaches the probes, and starts
    /// streaming: `probe_status` records first, then the `inventory`.
    pub async fn start(options: &LiveOptions) -> anyhow::Result<Self> {
        preflight::check(&preflight::Host::this_machine())?;
        let btf = Btf::from_sys_fs()?;
        let (offsets, missing) = offsets::kernel_offsets(&btf);
        for field in &missing {
            log::warn!("kernel BTF lacks {field}; events will leave it empty");
        }

        let ring_bytes = options.ring_buffer_mib * 1024 * 1024;
        let mut ebpf = probes::load(&offsets, ring_bytes)?;
        let logger = match EbpfLogger::init(&mut ebpf) {
            Ok(logger) => Some(watch(logger).context("failed to watch the eBPF log buffer")?),
            Err(error) => {
                log::warn!("eBPF diagnostics unavailable: {error}");
                None
            }
        };
        let statuses = probes::attach_all(&mut ebpf, &btf)?;

        let ring = RingBuf::try_from(
            ebpf.take_map("EVENTS")
                .context("map EVENTS missing from the eBPF object")?,
        )
        .context("map EVENTS is not a ring buffer")?;
        let ring = watch(ring).context("failed to watch the ring buffer")?;
        let lost = PerCpuArray::try_from(
            ebpf.take_map("LOST")
                .context("map LOST missing from the eBPF object")?,
        )
        .context("map LOST is not a per-CPU array")?;

        let (sender, records) = mpsc::channel(CHANNEL_CAPACITY);
        let now = monotonic_ns();
        for status in statuses {
            sender.send(Record::new(now, status)).await?;
        }
        let calls = if options.no_calls {
            None
        } else {
            let counter = CallCounter::new(&mut ebpf, now);
            let status = Event::ProbeStatus {
                probe: "count_call".into(),
                attached: counter.is_ok(),
                reason: counter.as_ref().err().map(|e| format!("{e:#}")),
                feature: "calls to patched functions, original against each patch".into(),
            };
            sender.send(Record::new(now, status)).await?;
            counter.ok()
        };
        let kallsyms = Kallsyms::read().unwrap_or_else(|error| {
            log::warn!("stack frames lack symbols: {error:#}");
            Kallsyms::default()
        });
        let (stop, stop_requested) = oneshot::channel();

        let pump = Pump {
            ebpf,
            calls,
            calls_interval: Duration::from_secs(options.calls_interval),
            stop_requested,
            ring,
            lost,
            logger,
            sender,
            decoder: Decoder::for_kernel(btf.member_offset("klp_patch", "replace_set").is_some()),
            sysfs_root: PathBuf::from(sysfs::SYSFS_ROOT),
            sysfs_interval: Duration::from_millis(options.sysfs_interval_ms),
            inventory: None,
            forced: HashSet::new(),
            transition: None,
            states: HashMap::new(),
            replaceable: HashMap::new(),
            functions: HashMap::new(),
            kallsyms_read: None,
            kallsyms_stale: false,
            kallsyms,
            lost_reported: 0,
        };
        tokio::spawn(pump.run());
        Ok(Self {
            records,
            stop: Some(stop),
        })
    }

    /// Asks the source to send its final call counts and lost-event count,
    /// then end the stream.
    pub fn request_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct Pump {
    /// Keeps the programs attached while the pump runs.
    ebpf: Ebpf,
    /// `None` when counting is off or could not start.
    calls: Option<CallCounter>,
    calls_interval: Duration,
    stop_requested: oneshot::Receiver<()>,
    ring: AsyncFd<RingBuf<MapData>>,
    lost: PerCpuArray<MapData, u64>,
    logger: Option<AsyncFd<EbpfLogger<&'static dyn log::Log>>>,
    sender: mpsc::Sender<Record>,
    decoder: Decoder,
    sysfs_root: PathBuf,
    sysfs_interval: Duration,
    /// The inventory last sent; `None` before the first read.
    inventory: Option<Vec<PatchInfo>>,
    /// Patches seen forced; sysfs does not show it.
    forced: HashSet<String>,
    /// Patch and target of the transition in progress.
    transition: Option<(String, PatchState)>,
    /// `klp_state`s of the patches seen loading; sysfs does not show them.
    states: HashMap<String, Vec<StateInfo>>,
    /// The enabled patches each patching transition under way may replace,
    /// as the inventory listed them when it started.
    replaceable: HashMap<String, Vec<String>>,
    /// Functions of the patches seen loading, to explain a refused load.
    functions: HashMap<String, Vec<FunctionRef>>,
    kallsyms_read: Option<JoinHandle<anyhow::Result<Kallsyms>>>,
    /// Another read of kallsyms is due when the one running ends.
    kallsyms_stale: bool,
    /// Kernel symbols, for stack frames; empty when /proc/kallsyms could
    /// not be read.
    kallsyms: Kallsyms,
    lost_reported: u64,
}

impl Pump {
    async fn run(mut self) {
        if let Err(error) = self.run_loop().await {
            log::error!("live source stopped: {error:#}");
        }
    }

    async fn run_loop(&mut self) -> anyhow::Result<()> {
        self.refresh_inventory().await?;
        let mut sysfs_tick = tokio::time::interval(self.sysfs_interval);
        let mut lost_tick = tokio::time::interval(LOST_INTERVAL);
        let mut calls_tick = tokio::time::interval(self.calls_interval);
        calls_tick.reset();

        loop {
            tokio::select! {
                guard = self.ring.readable_mut() => {
                    let mut guard = guard.context("ring buffer poll failed")?;
                    let records = drain(guard.get_inner_mut(), &mut self.decoder);
                    guard.clear_ready();
                    self.forward(records).await?;
                }
                guard = readable_logger(&mut self.logger) => {
                    let mut guard = guard.context("eBPF log buffer poll failed")?;
                    guard.get_inner_mut().flush();
                    guard.clear_ready();
                }
                _ = sysfs_tick.tick() => {
                    // Most records do not wake this loop (see the eBPF
                    // programs' wakeup()), so they are also read here.
                    self.drain_ring().await?;
                    self.refresh_inventory().await?;
                }
                _ = lost_tick.tick() => self.report_lost().await?,
                _ = calls_tick.tick() => self.report_calls().await?,
                read = kallsyms_done(&mut self.kallsyms_read) => self.kallsyms_refreshed(read),
                _ = &mut self.stop_requested => {
                    self.drain_ring().await?;
                    // The last periodic read may predate the latest changes.
                    self.refresh_inventory().await?;
                    self.report_calls().await?;
                    self.report_lost().await?;
                    return Ok(());
                }
                () = self.sender.closed() => return Ok(()),
            }
        }
    }

    async fn drain_ring(&mut self) -> anyhow::Result<()> {
        let records = drain(self.ring.get_mut(), &mut self.decoder);
        self.forward(records).await
    }

    async fn report_calls(&mut self) -> anyhow::Result<()> {
        let counts = match &mut self.calls {
            Some(calls) => calls.flush(monotonic_ns()),
            None => return Ok(()),
        };
        self.send_calls(counts).await
    }

    /// Starts or stops counting calls as patches and target modules come
    /// and go, and keeps the symbols for stack frames fresh. Returns the
    /// counts a counter took since the previous report before it detaches,
    /// to send ahead of `event`.
    fn follow_patches(&mut self, event: &Event) -> Vec<Event> {
        if matches!(
            event,
            Event::PatchFunction { .. } | Event::ModuleComing { .. }
        ) {
            self.refresh_kallsyms();
        }
        let Some(calls) = &mut self.calls else {
            return Vec::new();
        };
        let flushed = match event {
            Event::ModuleGoing { .. } | Event::PatchRemoved { .. } => calls.flush(monotonic_ns()),
            _ => Vec::new(),
        };
        match event {
            Event::PatchFunction {
                patch,
                object,
                function,
                sympos,
                new_func,
                ..
            } => {
                let replaced = ReplacedFunction {
                    patch: patch.clone(),
                    object: object.clone(),
                    function: function.clone(),
                    sympos: *sympos,
                    new_func: *new_func,
                };
                calls.track(&mut self.ebpf, &replaced);
            }
            Event::ModuleGoing { module } => calls.object_going(&mut self.ebpf, module),
            Event::PatchRemoved { patch } => calls.untrack_patch(&mut self.ebpf, patch),
            _ => {}
        }
        flushed
    }

    /// Sends `calls` events.
    async fn send_calls(&self, counts: Vec<Event>) -> anyhow::Result<()> {
        let now = monotonic_ns();
        for event in counts {
            self.sender.send(Record::new(now, event)).await?;
        }
        Ok(())
    }

    /// Counts the originals the kernel has just looked up while patching.
    fn locate_originals(&mut self) {
        let addresses = self.decoder.take_addresses();
        if let Some(calls) = &mut self.calls {
            for (old_func, new_func) in addresses {
                calls.locate(&mut self.ebpf, old_func, new_func);
            }
        }
    }

    /// Reads kallsyms again, off the loop because it is slow. A refresh
    /// asked for while a read runs follows that read, which may have
    /// started before the module that asked loaded.
    fn refresh_kallsyms(&mut self) {
        if self.kallsyms_read.is_some() {
            self.kallsyms_stale = true;
            return;
        }
        self.kallsyms_read = Some(tokio::task::spawn_blocking(Kallsyms::read));
    }

    fn kallsyms_refreshed(&mut self, read: anyhow::Result<Kallsyms>) {
        self.kallsyms_read = None;
        match read {
            Ok(kallsyms) => self.kallsyms = kallsyms,
            Err(error) => log::warn!("kallsyms not refreshed: {error:#}"),
        }
        if std::mem::take(&mut self.kallsyms_stale) {
            self.refresh_kallsyms();
        }
    }

    async fn forward(&mut self, records: Vec<Record>) -> anyhow::Result<()> {
        let mut inventory_changed = false;
        for mut record in records {
            let counts = self.follow_patches(&record.event);
            self.send_calls(counts).await?;
            match &mut record.event {
                Event::PatchFunction {
                    patch,
                    object,
                    function,
                    sympos,
                    ..
                } => {
                    let entry = FunctionRef {
                        object: object.clone(),
                        name: function.clone(),
                        sympos: *sympos,
                    };
                    self.functions.entry(patch.clone()).or_default().push(entry);
                }
                Event::TaskStack { frames, .. } => self.symbolize(frames),
                Event::PatchLoadFailed {
                    patch, conflicts, ..
                } => {
                    let functions = self
                        .functions
                        .get(patch.as_str())
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    let states = self
                        .states
                        .get(patch.as_str())
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    let loaded = self.inventory.as_deref().unwrap_or_default();
                    let set = self.decoder.replace_set(patch);
                    *conflicts = explain_refusal(patch, set, functions, states, loaded);
                    // A retried load walks the patch again.
                    self.functions.remove(patch.as_str());
                    self.states.remove(patch.as_str());
                }
                Event::PatchRemoved { patch } => {
                    self.replaceable.remove(patch.as_str());
                    self.functions.remove(patch.as_str());
                    self.states.remove(patch.as_str());
                }
                Event::PatchesReplaced { patch, replaced } => {
                    // The kernel frees the replaced patches right after this
                    // hook, so a sysfs read may already lack them: the list
                    // taken when the transition started counts too.
                    let loaded = self.inventory.as_deref().unwrap_or_default();
                    let mut names = self.replaceable.remove(patch.as_str()).unwrap_or_default();
                    for name in replaced_by(patch, self.decoder.replace_set(patch), loaded) {
                        if !names.contains(&name) {
                            names.push(name);
                        }
                    }
                    *replaced = names;
                    if replaced.is_empty() {
                        // The kernel calls klp_unpatch_replaced_patches() after
                        // every patching transition of a cumulative patch,
                        // also when there is nothing to replace.
                        continue;
                    }
                }
                Event::TransitionStarted { patch, target } => {
                    if *target == PatchState::Patched {
                        let loaded = self.inventory.as_deref().unwrap_or_default();
                        let set = self.decoder.replace_set(patch);
                        self.replaceable
                            .insert(patch.clone(), replaced_by(patch, set, loaded));
                    }
                    self.transition = Some((patch.clone(), *target));
                    inventory_changed = true;
                }
                Event::TransitionReversed { patch, target } => {
                    self.transition = Some((patch.clone(), *target));
                }
                Event::TransitionForced { patch } => self.note_forced(patch),
                Event::PatchStateId { patch, id, version } => {
                    let state = StateInfo {
                        id: *id,
                        version: *version,
                    };
                    self.states.entry(patch.clone()).or_default().push(state);
                }
                Event::TransitionCompleted { .. } | Event::TransitionCancelled { .. } => {
                    inventory_changed = true;
                }
                _ => {}
            }
            self.sender.send(record).await?;
        }
        self.locate_originals();
        if inventory_changed {
            self.refresh_inventory().await?;
        }
        Ok(())
    }

    /// Marks the patches that klp_force_transition() (6.1) marks forced: the
    /// transition's patch when it is being removed, or, when a cumulative
    /// patch is being applied, every patch it replaces.
    fn note_forced(&mut self, patch: &str) {
        let target = self
            .transition
            .as_ref()
            .filter(|(p, _)| p == patch)
            .map(|(_, t)| *t);
        if target == Some(PatchState::Unpatched) {
            self.forced.insert(patch.to_owned());
        } else if self.decoder.cumulative(patch) == Some(true) {
            let set = self.decoder.replace_set(patch);
            for other in replaced_by(patch, set, self.inventory.as_deref().unwrap_or_default()) {
                self.forced.insert(other);
            }
        }
    }

    /// Replaces the hex addresses of stack frames with symbol names.
    fn symbolize(&self, frames: &mut [String]) {
        for frame in frames {
            let address = frame
                .strip_prefix("0x")
                .and_then(|hex| u64::from_str_radix(hex, 16).ok());
            if let Some(address) = address {
                *frame = self.kallsyms.symbolize(address);
            }
        }
    }

    /// Reads sysfs and, when anything changed, sends `patch_added`,
    /// `patch_removed` and the new `inventory`.
    async fn refresh_inventory(&mut self) -> anyhow::Result<()> {
        let mut patches = match sysfs::read_inventory(&self.sysfs_root) {
            Ok(patches) => patches,
            Err(error) => {
                log::warn!("inventory not refreshed: {error:#}");
                return Ok(());
            }
        };
        for patch in &mut patches {
            patch.forced = self.forced.contains(&patch.name);
            patch.states = self.states.get(&patch.name).cloned().unwrap_or_default();
            if patch.cumulative.is_none() {
                patch.cumulative = self.decoder.cumulative(&patch.name);
            }
        }
        if self.inventory.as_ref() == Some(&patches) {
            return Ok(());
        }

        let now = monotonic_ns();
        for event in inventory_changes(self.inventory.as_deref(), &patches) {
            let counts = self.follow_patches(&event);
            self.send_calls(counts).await?;
            self.sender.send(Record::new(now, event)).await?;
        }
        self.sender
            .send(Record::new(
                now,
                Event::Inventory {
                    patches: patches.clone(),
                },
            ))
            .await?;
        self.inventory = Some(patches);
        Ok(())
    }

    async fn report_lost(&mut self) -> anyhow::Result<()> {
        let total: u64 = match self.lost.get(&0, 0) {
            Ok(per_cpu) => per_cpu.iter().sum(),
            Err(error) => {
                log::warn!("lost-event counter unreadable: {error}");
                return Ok(());
            }
        };
        let lost = total.saturating_sub(self.lost_reported)
            + std::mem::take(&mut self.decoder.unknown_records);
        self.lost_reported = total;
        if lost > 0 {
            log::warn!("{lost} events lost: the ring buffer was full (raise --ring-buffer-mib)");
            let record = Record::new(monotonic_ns(), Event::EventsLost { count: lost });
            self.sender.send(record).await?;
        }
        Ok(())
    }
}

/// Registers a map's file descriptor with the runtime.
fn watch<T: std::os::fd::AsRawFd>(map: T) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: the map owns its descriptor, which stays open and unchanged
    // until the map, and with it the AsyncFd, is dropped.
    unsafe { AsyncFd::register(map) }.map_err(|error| error.into_parts().1)
}

/// Functions and state ids of a refused patch that enabled patches of other
/// replace sets own: the kernel refuses such loads with replace sets, but
/// returns only -EINVAL.
fn explain_refusal(
    refused: &str,
    refused_set: Option<u32>,
    functions: &[FunctionRef],
    states: &[StateInfo],
    loaded: &[PatchInfo],
) -> Vec<String> {
    // Without replace sets the kernel has no such rule to break.
    let Some(refused_set) = refused_set else {
        return Vec::new();
    };
    let mut conflicts = Vec::new();
    let others = loaded
        .iter()
        .filter(|p| p.enabled && p.name != refused && p.replace_set != Some(refused_set));
    for other in others {
        let set = other
            .replace_set
            .map_or("none".to_owned(), |s| s.to_string());
        for function in functions {
            let owned = other.objects.iter().any(|o| {
                o.name == function.object
                    && o.functions
                        .iter()
                        .any(|f| f.name == function.name && f.sympos == function.sympos)
            });
            if owned {
                conflicts.push(format!(
                    "{}:{},{} is patched by {} in replace set {set}",
                    function.object, function.name, function.sympos, other.name
                ));
            }
        }
        for state in states
            .iter()
            .filter(|s| other.states.iter().any(|o| o.id == s.id))
        {
            conflicts.push(format!(
                "klp_state id {} is used by {} in replace set {set}",
                state.id, other.name
            ));
        }
    }
    conflicts
}

/// Enabled patches that a cumulative `patch` replaces: those of its replace
/// set, or all others on a kernel without replace sets.
fn replaced_by(patch: &str, set: Option<u32>, loaded: &[PatchInfo]) -> Vec<String> {
    loaded
        .iter()
        .filter(|p| p.enabled && p.name != patch)
        .filter(|p| set.is_none() || p.replace_set == set)
        .map(|p| p.name.clone())
        .collect()
}

/// A function a patch replaces.
struct FunctionRef {
    object: String,
    name: String,
    sympos: u32,
}

/// Waits for the kallsyms read in flight; never, when there is none.
async fn kallsyms_done(
    read: &mut Option<JoinHandle<anyhow::Result<Kallsyms>>>,
) -> anyhow::Result<Kallsyms> {
    match read {
        Some(handle) => match handle.await {
            Ok(result) => result,
            Err(error) => Err(anyhow::anyhow!("kallsyms read failed: {error}")),
        },
        None => std::future::pending().await,
    }
}

/// Reads every record waiting in the ring buffer.
fn drain(ring: &mut RingBuf<MapData>, decoder: &mut Decoder) -> Vec<Record> {
    let mut records = Vec::new();
    while let Some(item) = ring.next() {
        records.extend(decoder.decode_bytes(&item));
    }
    records
}

/// Waits until the eBPF log buffer is readable; never, without a logger.
async fn readable_logger<'a>(
    logger: &'a mut Option<AsyncFd<EbpfLogger<&'static dyn log::Log>>>,
) -> std::io::Result<tokio::io::unix::AsyncFdReadyMutGuard<'a, EbpfLogger<&'static dyn log::Log>>> {
    match logger {
        Some(logger) => logger.readable_mut().await,
        None => std::future::pending().await,
    }
}

/// `patch_added` and `patch_removed` events between two inventories.
pub fn inventory_changes(before: Option<&[PatchInfo]>, after: &[PatchInfo]) -> Vec<Event> {
    let Some(before) = before else {
        return Vec::new();
    };
    let mut events = Vec::new();
    for patch in after {
        if !before.iter().any(|p| p.name == patch.name) {
            events.push(Event::PatchAdded {
                patch: patch.name.clone(),
            });
        }
    }
    for patch in before {
        if !after.iter().any(|p| p.name == patch.name) {
            events.push(Event::PatchRemoved {
                patch: patch.name.clone(),
            });
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(name: &str) -> PatchInfo {
        PatchInfo {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn refusal_names_other_set_function() {
        let mut owner = patch("owner");
        owner.enabled = true;
        owner.replace_set = Some(1);
        owner.objects = vec![crate::event::ObjectInfo {
            name: "vmlinux".into(),
            patched: Some(true),
            functions: vec![crate::event::FunctionInfo {
                name: "f".into(),
                sympos: 1,
            }],
        }];
        owner.states = vec![StateInfo { id: 4, version: 1 }];
        let functions = [FunctionRef {
            object: "vmlinux".into(),
            name: "f".into(),
            sympos: 1,
        }];
        let states = [StateInfo { id: 4, version: 2 }];

        let conflicts = explain_refusal("new", Some(2), &functions, &states, &[owner.clone()]);
        assert_eq!(
            conflicts,
            vec![
                "vmlinux:f,1 is patched by owner in replace set 1".to_string(),
                "klp_state id 4 is used by owner in replace set 1".to_string(),
            ]
        );
        assert!(
            explain_refusal("new", Some(1), &functions, &states, &[owner.clone()]).is_empty(),
            "same set"
        );
        assert!(
            explain_refusal("new", None, &functions, &states, &[owner]).is_empty(),
            "no sets"
        );
    }

    #[test]
    fn replaced_patches_by_set() {
        let mut a = patch("a");
        a.enabled = true;
        a.replace_set = Some(1);
        let mut b = patch("b");
        b.enabled = true;
        b.replace_set = Some(2);
        let loaded = [a, b];
        assert_eq!(replaced_by("new", Some(1), &loaded), vec!["a"]);
        assert_eq!(replaced_by("new", None, &loaded), vec!["a", "b"]);
        assert!(replaced_by("new", Some(3), &loaded).is_empty());
    }

    #[test]
    fn first_inventory_has_no_changes() {
        assert!(inventory_changes(None, &[patch("a")]).is_empty());
    }

    #[test]
    fn added_and_removed_patches() {
        let events = inventory_changes(Some(&[patch("a"), patch("b")]), &[patch("b"), patch("c")]);
        assert_eq!(
            events,
            vec![
                Event::PatchAdded { patch: "c".into() },
                Event::PatchRemoved { patch: "a".into() }
            ]
        );
    }

    #[test]
    fn monotonic_clock_advances() {
        let first = monotonic_ns();
        assert!(monotonic_ns() >= first);
        assert!(first > 0);
    }
}
