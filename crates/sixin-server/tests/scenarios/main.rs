//! The scenario suite: every behaviour through real HTTP against a server on an ephemeral
//! port. Each scenario runs on SQLite, and on PostgreSQL when `SIXIN_TEST_DATABASE_URL` names
//! a server (under `CI=true` its absence is a failure, not a skip).

mod harness;

mod accounts;
mod bad_input;
mod emoji;
mod events;
mod groups;
mod history;
mod multinode;
mod relations;
mod send;
mod sessions;
mod storage;
mod web_login;
mod wire;

pub use harness::*;
