//! Scenarios: wire.

#[allow(unused_imports)]
use crate::*;
