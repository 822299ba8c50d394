//! Where events go besides the dashboard.

pub mod json;
