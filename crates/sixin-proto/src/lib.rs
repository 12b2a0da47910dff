//! Wire types of the Bilibili private-message web API as sixin speaks it.
//!
//! Shared by the server and the client so the two can never drift apart: the response
//! envelope, the error codes with their exact messages, the message and session objects, the
//! content types, the form-field parsing rules and WBI signing.
//!
//! Every id is a `u64` and is (de)serialized as a JSON number without going through `f64`, so
//! `msg_key` values above 2^53 and the `18446744073709551615` sentinel survive a round trip.

pub mod code;
pub mod content;
pub mod emoji;
pub mod envelope;
pub mod json;
pub mod params;
pub mod types;
pub mod wbi;

pub use code::ApiCode;
pub use envelope::Envelope;
pub use types::*;
