//! Where events come from besides the kernel: recorded logs.

pub mod replay;
