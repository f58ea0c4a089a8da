//! One error type for the whole core. The Python layer maps each variant to a typed
//! exception in exactly one place (`python/errors.rs`).

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    /// A frame or array argument has the wrong shape, dtype, layout or values.
    #[error("invalid frame: {0}")]
    Frame(String),
    /// Any other invalid argument (NaN boxes, negative sizes, bad polygons, ...).
    #[error("invalid input: {0}")]
    Input(String),
    /// Time went backwards or a sequence is inconsistent.
    #[error("time order: {0}")]
    TimeOrder(String),
    /// A model output that cannot be decoded (wrong shape, unknown layout).
    #[error("model output: {0}")]
    Model(String),
    /// A signal-timing constraint that no plan can satisfy, or a malformed intersection.
    #[error("signal constraint: {0}")]
    Signal(String),
    /// A plate reading or plate-image problem.
    #[error("plate: {0}")]
    Plate(String),
}

pub type CoreResult<T> = Result<T, CoreError>;

impl CoreError {
    pub fn input(msg: impl Into<String>) -> Self {
        CoreError::Input(msg.into())
    }
    pub fn frame(msg: impl Into<String>) -> Self {
        CoreError::Frame(msg.into())
    }
}
