//! Scenarios: sessions.

#[allow(unused_imports)]
use crate::*;
