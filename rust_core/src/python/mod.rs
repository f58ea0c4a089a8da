//! PyO3 bindings: the thin layer between `engine` (Python) and the pure-Rust core.
//! Each submodule mirrors one core module and registers its functions/classes flat into
//! `engine._core`. Columnar numpy arrays cross the boundary; the GIL is released for work.
use pyo3::prelude::*;

pub mod count;
pub mod crowd;
pub mod detect;
pub mod errors;
pub mod flow;
pub mod geometry;
pub mod plate;
pub mod preprocess;
pub mod signal;
pub mod track;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    preprocess::register(m)?;
    detect::register(m)?;
    track::register(m)?;
    geometry::register(m)?;
    count::register(m)?;
    flow::register(m)?;
    signal::register(m)?;
    plate::register(m)?;
    crowd::register(m)?;
    Ok(())
}
