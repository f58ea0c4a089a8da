//! The single place where core errors become Python exceptions.
use crate::error::CoreError;
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

create_exception!(
    _core,
    CitystreamError,
    PyValueError,
    "Base class of every citystream error."
);
create_exception!(
    _core,
    FrameError,
    CitystreamError,
    "A frame (array or bytes) is malformed."
);
create_exception!(
    _core,
    InputError,
    CitystreamError,
    "An argument is invalid (NaN, negative, bad shape)."
);
create_exception!(
    _core,
    TimeOrderError,
    CitystreamError,
    "Timestamps went backwards for a camera."
);
create_exception!(
    _core,
    ModelOutputError,
    CitystreamError,
    "A model output cannot be decoded."
);
create_exception!(
    _core,
    SignalConstraintError,
    CitystreamError,
    "A signal plan or intersection violates a constraint."
);
create_exception!(
    _core,
    PlateError,
    CitystreamError,
    "A plate image or reading is invalid."
);

impl From<CoreError> for PyErr {
    fn from(e: CoreError) -> PyErr {
        let msg = e.to_string();
        match e {
            CoreError::Frame(_) => FrameError::new_err(msg),
            CoreError::Input(_) => InputError::new_err(msg),
            CoreError::TimeOrder(_) => TimeOrderError::new_err(msg),
            CoreError::Model(_) => ModelOutputError::new_err(msg),
            CoreError::Signal(_) => SignalConstraintError::new_err(msg),
            CoreError::Plate(_) => PlateError::new_err(msg),
        }
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("CitystreamError", py.get_type::<CitystreamError>())?;
    m.add("FrameError", py.get_type::<FrameError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("TimeOrderError", py.get_type::<TimeOrderError>())?;
    m.add("ModelOutputError", py.get_type::<ModelOutputError>())?;
    m.add(
        "SignalConstraintError",
        py.get_type::<SignalConstraintError>(),
    )?;
    m.add("PlateError", py.get_type::<PlateError>())?;
    Ok(())
}
