//! Errors of the client.

/// What a call can fail with. API errors keep the upstream code and message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a non-zero business code.
    #[error("API error {code}: {message}")]
    Api { code: i64, message: String },
    /// No answer: connection refused or dropped, timeout, TLS.
    #[error("transport: {0}")]
    Transport(#[source] reqwest::Error),
    /// An HTTP error status without an API envelope.
    #[error("HTTP {status}: {body}")]
    Http { status: u16, body: String },
    /// An answer that does not have the expected shape.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// Missing or malformed credentials or settings.
    #[error("{0}")]
    Config(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The upstream code of an API error.
    pub fn code(&self) -> Option<i64> {
        match self {
            Error::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The known API code, if it is one of the documented ones.
    pub fn api_code(&self) -> Option<sixin_proto::ApiCode> {
        self.code().and_then(sixin_proto::ApiCode::from_code)
    }
}
