//! How a command fails: a message printed as `Error: <message>` on stderr and etcdctl's
//! exit code for that kind of failure.

use std::fmt;

/// etcdctl's exit codes (`pkg/cobrautl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// 1: a request failed, or a generic error.
    Error,
    /// 2: could not connect or authenticate; also etcdctl's code for failed lease
    /// time-to-live, list and keep-alive requests.
    BadConnection,
    /// 3: bad input on stdin (txn, interactive watch).
    InvalidInput,
    /// 4: a valid flag with an unsupported value (output format, consistency, sort).
    BadFeature,
    /// 5: interrupted (a watch canceled by the server).
    Interrupted,
    /// 128: bad arguments.
    BadArgs,
}

impl ExitCode {
    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Error => 1,
            ExitCode::BadConnection => 2,
            ExitCode::InvalidInput => 3,
            ExitCode::BadFeature => 4,
            ExitCode::Interrupted => 5,
            ExitCode::BadArgs => 128,
        }
    }
}

/// A failed command: what to print after `Error: ` and the exit code. A `message` of
/// `None` exits without printing (etcdctl's `os.Exit` after its own report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlError {
    /// The exit code.
    pub code: ExitCode,
    /// The text after `Error: `, or `None` to print nothing.
    pub message: Option<String>,
}

impl CtlError {
    /// A failure with a message.
    pub fn new(code: ExitCode, message: impl Into<String>) -> CtlError {
        CtlError {
            code,
            message: Some(message.into()),
        }
    }

    /// A failure that prints nothing more (its report was already written).
    pub fn silent(code: ExitCode) -> CtlError {
        CtlError {
            code,
            message: None,
        }
    }

    /// Bad arguments (exit 128).
    pub fn bad_args(message: impl Into<String>) -> CtlError {
        CtlError::new(ExitCode::BadArgs, message)
    }

    /// A generic failure (exit 1).
    pub fn error(message: impl Into<String>) -> CtlError {
        CtlError::new(ExitCode::Error, message)
    }

    /// A command or subcommand this etcdctl does not have yet (exit 4).
    pub fn not_supported(command: &str) -> CtlError {
        CtlError::new(
            ExitCode::BadFeature,
            format!("\"{command}\" is not supported yet by this etcdctl"),
        )
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(message) => write!(f, "Error: {message}"),
            None => write!(f, "exit status {}", self.code.code()),
        }
    }
}

impl std::error::Error for CtlError {}

impl From<std::io::Error> for CtlError {
    fn from(e: std::io::Error) -> CtlError {
        CtlError::error(e.to_string())
    }
}
