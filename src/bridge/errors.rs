//! How errors from the parts of the server that know no Python (`http/`)
//! become Python exceptions for the app that caused them.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::http::HeadError;

impl From<HeadError> for PyErr {
    fn from(err: HeadError) -> Self {
        PyValueError::new_err(err.to_string())
    }
}
