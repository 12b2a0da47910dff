//! Scenarios: history.

#[allow(unused_imports)]
use crate::*;
