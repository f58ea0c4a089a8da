//! citystream's Rust core.
//!
//! Every module here is pure Rust (no PyO3): the hot paths of per-frame video structuring,
//! traffic-flow estimation and signal timing. The Python bindings live in [`python`], behind
//! the `python` cargo feature, so `cargo test` and the criterion benches run without Python.

pub mod count;
pub mod crowd;
pub mod detect;
pub mod error;
pub mod flow;
pub mod geometry;
pub mod plate;
pub mod preprocess;
pub mod signal;
pub mod track;

pub use error::{CoreError, CoreResult};

#[cfg(feature = "python")]
pub mod python;
