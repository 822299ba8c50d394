//! The Prometheus text exposition format, version 0.0.4: a `# HELP` and a
//! `# TYPE` line per metric family, then one line per sample.
//!
//! Labels name patches, targets, reasons, rules and probes, never a task,
//! because pids and comms would give every host new series per transition.

use std::collections::BTreeMap;

use super::{State, Totals};
use crate::{
    event::{BlockReason, PatchState},
    model::{Model, TaskStatus, Transition},
};

/// Renders the state as exposition text. `now_ns` (CLOCK_MONOTONIC) is the
/// reference for `livepatch_transition_elapsed_seconds`.
pub fn render(state: &State, now_ns: u64) -> String {
    let mut out = Exposition::default();
    render_build(&mut out);
    render_patches(&mut out, &state.model);
    render_transition(&mut out, &state.model, now_ns);
    render_blocked_tasks(&mut out, &state.model);
    render_totals(&mut out, &state.totals);
    render_findings(&mut out, &state.model);
    render_probes(&mut out, &state.model);
    render_events(&mut out, &state.model, &state.totals);
    render_calls(&mut out, &state.model);
    out.text
}

fn render_build(out: &mut Exposition) {
    out.family(
        "livepatch_build_info",
        Type::Gauge,
        "Version of livepatch-tui serving these metrics; always 1.",
    );
    out.sample(
        "livepatch_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
}

fn render_patches(out: &mut Exposition, model: &Model) {
    out.family(
        "livepatch_patches_loaded",
        Type::Gauge,
        "Livepatches loaded, from the latest inventory.",
    );
    out.sample("livepatch_patches_loaded", &[], model.patches.len() as f64);

    out.family(
        "livepatch_patch_info",
        Type::Gauge,
        "A loaded livepatch; always 1. replace_set is empty on kernels without replace sets, \
         cumulative is empty when the kernel does not show it.",
    );
    for patch in model.patches.values() {
        let replace_set = patch
            .replace_set
            .map(|set| set.to_string())
            .unwrap_or_default();
        let cumulative = patch.cumulative.map(|c| c.to_string()).unwrap_or_default();
        let labels = [
            ("patch", patch.name.as_str()),
            ("replace_set", replace_set.as_str()),
            ("cumulative", cumulative.as_str()),
        ];
        out.sample("livepatch_patch_info", &labels, 1.0);
    }

    out.family(
        "livepatch_patch_enabled",
        Type::Gauge,
        "1 if the livepatch is enabled in sysfs.",
    );
    for patch in model.patches.values() {
        out.sample(
            "livepatch_patch_enabled",
            &[("patch", patch.name.as_str())],
            flag(patch.enabled),
        );
    }

    out.family(
        "livepatch_patch_forced",
        Type::Gauge,
        "1 if the livepatch was forced, per the inventory or a transition_forced event in this run; \
         the kernel never unloads a forced patch's module.",
    );
    for patch in model.patches.values() {
        out.sample(
            "livepatch_patch_forced",
            &[("patch", patch.name.as_str())],
            flag(model.is_forced(&patch.name)),
        );
    }
}

fn render_transition(out: &mut Exposition, model: &Model, now_ns: u64) {
    let transition = model.transition.as_ref();

    out.family(
        "livepatch_transition_in_progress",
        Type::Gauge,
        "1 while a transition runs.",
    );
    out.sample(
        "livepatch_transition_in_progress",
        &[],
        flag(transition.is_some()),
    );

    out.family(
        "livepatch_transition_info",
        Type::Gauge,
        "The transition in progress, with its patch and target state; absent when none runs.",
    );
    if let Some(transition) = transition {
        let labels = [
            ("patch", transition.patch.as_str()),
            ("target", transition.target.as_str()),
        ];
        out.sample("livepatch_transition_info", &labels, 1.0);
    }

    out.family(
        "livepatch_transition_elapsed_seconds",
        Type::Gauge,
        "Time since the transition in progress started, measured against CLOCK_MONOTONIC for a live \
         source and against the newest event for a recording; 0 when none runs.",
    );
    let elapsed_ns = transition.map_or(0, |t| t.elapsed_ns(now_ns));
    out.sample(
        "livepatch_transition_elapsed_seconds",
        &[],
        elapsed_ns as f64 / 1e9,
    );

    out.family(
        "livepatch_transition_tasks_left",
        Type::Gauge,
        "Tasks not yet switched in the transition in progress; 0 when none runs.",
    );
    out.sample(
        "livepatch_transition_tasks_left",
        &[],
        f64::from(transition.map_or(0, tasks_left)),
    );

    out.family(
        "livepatch_transition_passes",
        Type::Gauge,
        "Passes of the kernel over all tasks in the transition in progress; 0 when none runs.",
    );
    out.sample(
        "livepatch_transition_passes",
        &[],
        transition.map_or(0, |t| t.passes.len()) as f64,
    );
}

/// Tasks left: the newer of the kernel's count at the end of the latest
/// pass and the count of tasks seen but not switched, which changes between
/// passes as tasks switch on their way back to user space.
fn tasks_left(transition: &Transition) -> u32 {
    let seen = transition.tasks_left.back().copied();
    let pass = transition.passes.last().map(|p| (p.ts_ns, p.tasks_left));
    match (seen, pass) {
        (Some(seen), Some(pass)) if seen.0 > pass.0 => seen.1,
        (_, Some(pass)) => pass.1,
        (Some(seen), None) => seen.1,
        (None, None) => 0,
    }
}

const BLOCK_REASONS: [BlockReason; 4] = [
    BlockReason::Running,
    BlockReason::UnreliableStack,
    BlockReason::SleepingInFunction,
    BlockReason::Unknown,
];

fn render_blocked_tasks(out: &mut Exposition, model: &Model) {
    let in_progress = model.transition.is_some();
    let blocked = model
        .tasks
        .iter()
        .filter(|task| in_progress && task.status == TaskStatus::Blocked);

    let mut by_reason: BTreeMap<&str, u64> =
        BLOCK_REASONS.iter().map(|r| (r.as_str(), 0)).collect();
    for task in blocked {
        let reason = task.reason.unwrap_or(BlockReason::Unknown);
        *by_reason.entry(reason.as_str()).or_default() += 1;
    }

    out.family(
        "livepatch_tasks_blocked",
        Type::Gauge,
        "Tasks of the transition in progress whose latest check failed, by reason.",
    );
    for (reason, count) in by_reason {
        out.sample(
            "livepatch_tasks_blocked",
            &[("reason", reason)],
            count as f64,
        );
    }

    let stuck = if in_progress {
        model.tasks.stuck().count()
    } else {
        0
    };
    out.family(
        "livepatch_tasks_stuck",
        Type::Gauge,
        "Tasks of the transition in progress that failed the same way on many checks in a row \
         (about half a minute) and are unlikely to switch on their own.",
    );
    out.sample("livepatch_tasks_stuck", &[], stuck as f64);
}

const TARGETS: [PatchState; 2] = [PatchState::Patched, PatchState::Unpatched];

fn render_totals(out: &mut Exposition, totals: &Totals) {
    out.family(
        "livepatch_transitions_started_total",
        Type::Counter,
        "Transitions started, by target state.",
    );
    for target in TARGETS {
        let count = totals.started.get(target);
        out.sample(
            "livepatch_transitions_started_total",
            &[("target", target.as_str())],
            count as f64,
        );
    }

    out.family(
        "livepatch_transitions_completed_total",
        Type::Counter,
        "Transitions completed, by target state and whether they were forced.",
    );
    for target in TARGETS {
        for (forced, counts) in [
            ("false", &totals.completed),
            ("true", &totals.completed_forced),
        ] {
            let labels = [("target", target.as_str()), ("forced", forced)];
            out.sample(
                "livepatch_transitions_completed_total",
                &labels,
                counts.get(target) as f64,
            );
        }
    }

    out.family(
        "livepatch_transitions_cancelled_total",
        Type::Counter,
        "Transitions cancelled.",
    );
    out.sample(
        "livepatch_transitions_cancelled_total",
        &[],
        totals.cancelled as f64,
    );

    out.family(
        "livepatch_transitions_reversed_total",
        Type::Counter,
        "Transitions reversed.",
    );
    out.sample(
        "livepatch_transitions_reversed_total",
        &[],
        totals.reversed as f64,
    );

    let name = "livepatch_transition_duration_seconds";
    out.family(name, Type::Histogram, "Duration of completed transitions, forced ones included, as the kernel's timestamps measure it.");
    for (bound, count) in totals.durations.cumulative() {
        let bound = format_value(bound);
        out.sample(
            &format!("{name}_bucket"),
            &[("le", bound.as_str())],
            count as f64,
        );
    }
    out.sample(&format!("{name}_sum"), &[], totals.durations.sum);
    out.sample(&format!("{name}_count"), &[], totals.durations.count as f64);

    out.family(
        "livepatch_patch_load_failures_total",
        Type::Counter,
        "Livepatch loads the kernel rejected (klp_enable_patch returned an error).",
    );
    out.sample(
        "livepatch_patch_load_failures_total",
        &[],
        totals.load_failures as f64,
    );
}

fn render_findings(out: &mut Exposition, model: &Model) {
    let mut by_rule: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for finding in &model.findings {
        *by_rule
            .entry((finding.rule.as_str(), finding.severity.as_str()))
            .or_default() += 1;
    }

    out.family(
        "livepatch_findings",
        Type::Gauge,
        "Findings of the latest validator run on the loaded patches, by rule and severity.",
    );
    for ((rule, severity), count) in by_rule {
        out.sample(
            "livepatch_findings",
            &[("rule", rule), ("severity", severity)],
            count as f64,
        );
    }
}

fn render_probes(out: &mut Exposition, model: &Model) {
    let (attached, known) = model.probe_counts();

    out.family(
        "livepatch_probes_attached",
        Type::Gauge,
        "Kernel probes attached.",
    );
    out.sample("livepatch_probes_attached", &[], attached as f64);

    out.family(
        "livepatch_probes",
        Type::Gauge,
        "Kernel probes by state; a missing probe's hook is absent or inlined on this kernel, and the feature it feeds is off.",
    );
    out.sample(
        "livepatch_probes",
        &[("state", "attached")],
        attached as f64,
    );
    out.sample(
        "livepatch_probes",
        &[("state", "missing")],
        (known - attached) as f64,
    );

    out.family(
        "livepatch_probe_attached",
        Type::Gauge,
        "1 if the kernel probe attached, 0 if it is missing.",
    );
    for (probe, info) in &model.probes {
        out.sample(
            "livepatch_probe_attached",
            &[("probe", probe.as_str())],
            flag(info.attached),
        );
    }
}

fn render_events(out: &mut Exposition, model: &Model, totals: &Totals) {
    out.family(
        "livepatch_events_total",
        Type::Counter,
        "Events applied, by JSON Lines kind.",
    );
    for (kind, count) in &totals.events {
        out.sample("livepatch_events_total", &[("kind", *kind)], *count as f64);
    }

    out.family(
        "livepatch_events_lost_total",
        Type::Counter,
        "Events lost: dropped by the kernel when the ring buffer was full, or unreadable to this build.",
    );
    out.sample("livepatch_events_lost_total", &[], model.events_lost as f64);
}

fn render_calls(out: &mut Exposition, model: &Model) {
    out.family(
        "livepatch_function_calls_total",
        Type::Counter,
        "Calls to a patched function, by the code that ran: version is \"original\" for the \
         unpatched code, or the name of the patch whose replacement ran.",
    );
    for (label, stats) in &model.calls {
        let (object, function, sympos) = split_function_label(label);
        let versions = std::iter::once(("original", stats.original_total)).chain(
            stats
                .patched_total
                .iter()
                .map(|(patch, count)| (patch.as_str(), *count)),
        );
        for (version, count) in versions {
            let labels = [
                ("object", object),
                ("function", function),
                ("sympos", sympos),
                ("version", version),
            ];
            out.sample("livepatch_function_calls_total", &labels, count as f64);
        }
    }

    out.family(
        "livepatch_function_calls_blind_spot",
        Type::Gauge,
        "1 when the latest call counts of the function cannot be trusted, because a probe is \
         missing or missed calls; the calls events in the log say why.",
    );
    for (label, stats) in &model.calls {
        let (object, function, sympos) = split_function_label(label);
        let labels = [
            ("object", object),
            ("function", function),
            ("sympos", sympos),
        ];
        out.sample(
            "livepatch_function_calls_blind_spot",
            &labels,
            flag(stats.blind_spot.is_some()),
        );
    }
}

/// Splits the model's `object:function,sympos` key. Object names contain no
/// colon and function names no comma, because both are kernel symbol or
/// module names.
fn split_function_label(label: &str) -> (&str, &str, &str) {
    let (object, rest) = label.split_once(':').unwrap_or(("", label));
    let (function, sympos) = rest.rsplit_once(',').unwrap_or((rest, "0"));
    (object, function, sympos)
}

fn flag(value: bool) -> f64 {
    if value { 1.0 } else { 0.0 }
}

#[derive(Clone, Copy, Debug)]
enum Type {
    Counter,
    Gauge,
    Histogram,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// Exposition text under construction.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: Type, help: &str) {
        self.text
            .push_str(&format!("# HELP {name} {}\n", escape_help(help)));
        self.text
            .push_str(&format!("# TYPE {name} {}\n", kind.as_str()));
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(label, value)| format!("{label}=\"{}\"", escape_label_value(value)))
                .collect();
            self.text.push('{');
            self.text.push_str(&pairs.join(","));
            self.text.push('}');
        }
        self.text.push(' ');
        self.text.push_str(&format_value(value));
        self.text.push('\n');
    }
}

/// Escapes a label value: backslash, double quote and line feed.
pub(super) fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Escapes a `# HELP` text: backslash and line feed.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Formats a sample value or bucket bound as the format expects: Go's
/// float syntax, with `+Inf`, `-Inf` and `NaN` spelled out.
pub(super) fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        value.to_string()
    }
}
