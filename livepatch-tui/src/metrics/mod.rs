//! Prometheus metrics of the headless log (`log --metrics ADDR`).
//!
//! The log loop applies every record to one [`State`] behind a lock, and
//! the HTTP endpoint renders that state on each scrape. Gauges are read
//! from the [`Model`]. Most counters are kept here, in [`Totals`], because
//! the model keeps only a bounded history and a counter must never go down
//! while the process runs. Lost events and calls come from the model's own
//! run totals.

mod render;
mod server;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use render::render;
pub use server::{CONTENT_TYPE, METRICS_PATH, Server};

use crate::{
    event::{Event, PatchState, Record},
    model::{Model, Transition},
};

/// Upper bounds, in seconds, of the buckets of
/// `livepatch_transition_duration_seconds`. The kernel retries once a
/// second, so a transition with no blocked task takes about a second. One
/// held by a sleeping task can take many minutes.
pub const DURATION_BUCKETS_SECONDS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// The model and the run's counters, which each scrape renders.
#[derive(Clone, Debug, Default)]
pub struct State {
    pub model: Model,
    pub totals: Totals,
}

impl State {
    /// Counts one record, then applies it to the model.
    pub fn apply(&mut self, record: &Record) {
        self.totals
            .observe(&record.event, self.model.transition.as_ref());
        self.model.apply(record);
    }
}

/// Counters since the process started. They only go up.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    /// Records applied, by JSON `kind`.
    pub events: std::collections::BTreeMap<&'static str, u64>,
    /// Transitions started, by target state.
    pub started: PerTarget,
    /// Transitions completed, by target state, not forced.
    pub completed: PerTarget,
    /// Transitions completed, by target state, after a force.
    pub completed_forced: PerTarget,
    pub cancelled: u64,
    pub reversed: u64,
    /// `klp_enable_patch` calls the kernel rejected.
    pub load_failures: u64,
    /// Durations of completed transitions, forced ones included.
    pub durations: Histogram,
}

impl Totals {
    /// Counts one event. `transition` is the one in progress before the
    /// event is applied. A force seen earlier marks its completion forced.
    fn observe(&mut self, event: &Event, transition: Option<&Transition>) {
        *self.events.entry(event.kind()).or_default() += 1;

        match event {
            Event::TransitionStarted { target, .. } => self.started.add(*target),
            Event::TransitionCompleted {
                target,
                duration_ms,
                forced,
                ..
            } => {
                let forced_earlier = transition.is_some_and(|t| t.forced_ns.is_some());
                if *forced || forced_earlier {
                    self.completed_forced.add(*target);
                } else {
                    self.completed.add(*target);
                }
                self.durations.observe(duration_ms / 1e3);
            }
            Event::TransitionCancelled { .. } => self.cancelled += 1,
            Event::TransitionReversed { .. } => self.reversed += 1,
            Event::PatchLoadFailed { .. } => self.load_failures += 1,
            _ => {}
        }
    }
}

/// A counter per target state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PerTarget {
    pub patched: u64,
    pub unpatched: u64,
}

impl PerTarget {
    fn add(&mut self, target: PatchState) {
        match target {
            PatchState::Patched => self.patched += 1,
            PatchState::Unpatched => self.unpatched += 1,
        }
    }

    pub fn get(&self, target: PatchState) -> u64 {
        match target {
            PatchState::Patched => self.patched,
            PatchState::Unpatched => self.unpatched,
        }
    }
}

/// A Prometheus histogram over [`DURATION_BUCKETS_SECONDS`].
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// Observations per bucket, not cumulative. The last entry is the
    /// `+Inf` bucket.
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; DURATION_BUCKETS_SECONDS.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }
}

impl Histogram {
    pub fn observe(&mut self, value: f64) {
        let bucket = DURATION_BUCKETS_SECONDS
            .iter()
            .position(|&bound| value <= bound)
            .unwrap_or(DURATION_BUCKETS_SECONDS.len());
        self.counts[bucket] += 1;
        self.sum += value;
        self.count += 1;
    }

    /// Cumulative counts per upper bound, `+Inf` last, as the exposition
    /// format writes them.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let bounds = DURATION_BUCKETS_SECONDS
            .iter()
            .copied()
            .chain([f64::INFINITY]);
        bounds.zip(self.counts.iter().scan(0, |total, count| {
            *total += count;
            Some(*total)
        }))
    }
}

/// The state shared by the log loop, which applies records, and the HTTP
/// endpoint, which renders them. The lock is never held across an await.
#[derive(Clone, Debug, Default)]
pub struct SharedState(Arc<Mutex<State>>);

impl SharedState {
    /// Locks the state. A panic while the lock was held leaves the state as
    /// it was at that point, which is still worth serving.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The time a scrape measures `livepatch_transition_elapsed_seconds`
/// against. The model reads no clock, so the endpoint chooses one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// CLOCK_MONOTONIC at the scrape, the clock the kernel stamps events
    /// with: for a live source, where a stuck transition sends no events
    /// while its elapsed time grows.
    Monotonic,
    /// The newest event's timestamp: for a recording, whose time stopped at
    /// its last line.
    LastEvent,
}

impl Clock {
    /// Returns the reference time in CLOCK_MONOTONIC nanoseconds, never
    /// before the newest event.
    pub fn now_ns(self, model: &Model) -> u64 {
        match self {
            Self::Monotonic => crate::kernel::monotonic_ns().max(model.now_ns),
            Self::LastEvent => model.now_ns,
        }
    }
}

#[cfg(test)]
mod tests;
