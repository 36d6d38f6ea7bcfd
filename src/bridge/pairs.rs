//! Header lists from Python apps (`[(name, value), ...]` of `str`), read
//! in place: the text is borrowed from the Python strings, not copied.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

/// Calls `each(name, value)` for every pair of `headers`, any iterable of
/// 2-tuples of `str`.
pub(crate) fn each_str_pair(
    headers: &Bound<'_, PyAny>,
    mut each: impl FnMut(&str, &str) -> PyResult<()>,
) -> PyResult<()> {
    // A list, the usual container, is walked without an iterator object.
    if let Ok(list) = headers.cast::<PyList>() {
        for item in list.iter() {
            pair(&item, &mut each)?;
        }
        return Ok(());
    }
    for item in headers.try_iter()? {
        pair(&item?, &mut each)?;
    }
    Ok(())
}

fn pair(
    item: &Bound<'_, PyAny>,
    each: &mut impl FnMut(&str, &str) -> PyResult<()>,
) -> PyResult<()> {
    let tuple = item
        .cast::<PyTuple>()
        .ok()
        .filter(|t| t.len() == 2)
        .ok_or_else(|| {
            PyTypeError::new_err(format!(
                "a header must be a (name, value) tuple of str, not {}",
                item.repr().map(|r| r.to_string()).unwrap_or_default()
            ))
        })?;
    let text = |i: usize| -> PyResult<Bound<'_, PyString>> {
        let part = tuple.get_item(i)?;
        part.cast_into::<PyString>().map_err(|e| {
            PyTypeError::new_err(format!(
                "header names and values must be str, not {}",
                e.into_inner()
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })
    };
    let (name, value) = (text(0)?, text(1)?);
    each(name.to_str()?, value.to_str()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(py: Python<'_>, code: &std::ffi::CStr) -> PyResult<Vec<(String, String)>> {
        let headers = py.eval(code, None, None)?;
        let mut out = Vec::new();
        each_str_pair(&headers, |n, v| {
            out.push((n.to_owned(), v.to_owned()));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn lists_and_other_iterables_of_pairs() {
        Python::initialize();
        Python::attach(|py| {
            let want = vec![
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "é".to_owned()),
            ];
            assert_eq!(collect(py, c"[('a', '1'), ('b', 'é')]").unwrap(), want);
            assert_eq!(collect(py, c"(('a', '1'), ('b', 'é'))").unwrap(), want);
            assert_eq!(
                collect(py, c"iter([('a', '1'), ('b', 'é')])").unwrap(),
                want
            );
            assert!(collect(py, c"[('a', 1)]").is_err());
            assert!(collect(py, c"[('a', '1', '2')]").is_err());
            assert!(collect(py, c"[['a', '1']]").is_err());
            assert!(collect(py, c"5").is_err());
        });
    }
}
