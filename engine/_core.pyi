"""Type stubs for the compiled Rust module `engine._core`. Each section mirrors one
`rust_core/src/python/<module>.rs`; keep them in step."""

import numpy as np
import numpy.typing as npt

__version__: str

# ---- errors -------------------------------------------------------------------------
class CitystreamError(ValueError): ...
class FrameError(CitystreamError): ...
class InputError(CitystreamError): ...
class TimeOrderError(CitystreamError): ...
class ModelOutputError(CitystreamError): ...
class SignalConstraintError(CitystreamError): ...
class PlateError(CitystreamError): ...

# ---- preprocess ---------------------------------------------------------------------

# ---- detect -------------------------------------------------------------------------

# ---- track --------------------------------------------------------------------------

# ---- geometry -----------------------------------------------------------------------

# ---- count --------------------------------------------------------------------------

# ---- flow ---------------------------------------------------------------------------

# ---- signal -------------------------------------------------------------------------

# ---- plate --------------------------------------------------------------------------

# ---- crowd --------------------------------------------------------------------------
