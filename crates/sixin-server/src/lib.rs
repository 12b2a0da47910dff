//! The sixin server: the Bilibili private-message web API on SQLite or PostgreSQL.
//!
//! Data flows one way: `http` (parse, envelope) → `domain` (rules) → `store` (SQL).

pub mod app;
pub mod clock;
pub mod config;
pub mod demo;
pub mod domain;
pub mod http;
pub mod ids;
pub mod store;

pub use app::{build, start, start_with, Running};
pub use config::Config;
