//! livepatch-tui: a live view of Linux kernel livepatches.
//!
//! Events flow one way: kernel hooks, sysfs snapshots and recorded logs
//! produce [`event::Record`]s; [`model::Model::apply`] folds them into one
//! picture; the dashboard, the JSON log and the metrics read that picture.

pub mod baseline;
pub mod cli;
pub mod event;
pub mod headless;
pub mod kernel;
pub mod metrics;
pub mod model;
pub mod sink;
pub mod source;
pub mod ui;
pub mod validator;
pub mod verdict;
