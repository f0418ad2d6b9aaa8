//! One error type for the whole generator.
//!
//! A benchmark run fails for a handful of reasons (a server that will not
//! start, a scenario that cannot be set up, an I/O error on a control pipe);
//! each is reported once, as a sentence, and the run ends. A message string
//! says it best, so that is all this type carries.

use std::fmt;
use std::io;

/// Why a run could not be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

/// Result with the generator's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error with this message.
    pub fn msg(message: impl Into<String>) -> Error {
        Error(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error(e.to_string())
    }
}
