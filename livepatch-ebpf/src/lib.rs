//! Empty library target: lets livepatch-tui name this crate as a build
//! dependency, so that cargo rebuilds the programs when it changes.
#![no_std]
