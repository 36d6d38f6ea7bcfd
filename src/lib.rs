//! `diorite._diorite`: the Rust core of the Diorite HTTP server.
//!
//! This file only registers the module; each concern lives in its own
//! module; docs/architecture.md has the map and the rules at the GIL
//! boundary.

use pyo3::prelude::*;

// hyper and tokio allocate small objects per request on the I/O thread;
// mimalloc makes those allocations markedly cheaper than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod asgi;
mod bridge;
mod http;
mod log;
mod memory;
mod rsgi;
mod server;
mod sync;
mod tls;
mod worker;
mod ws;
mod wsgi;

#[pymodule]
fn _diorite(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // Whether this build runs without PyO3's reference pool (see
    // .cargo/config.toml); the test suite insists on it.
    m.add("STRICT_GIL", cfg!(pyo3_disable_reference_pool))?;
    m.add_class::<worker::Worker>()?;
    m.add_function(wrap_pyfunction!(worker::check_tls, m)?)?;
    m.add_function(wrap_pyfunction!(worker::metrics_layout, m)?)?;
    m.add(
        "TlsSettingError",
        m.py().get_type::<worker::TlsSettingError>(),
    )?;
    m.add_class::<bridge::Done>()?;
    m.add_class::<bridge::Ready>()?;
    m.add_class::<bridge::Waiting>()?;
    m.add_class::<bridge::Failed>()?;
    m.add_class::<asgi::HttpReceive>()?;
    m.add_class::<asgi::HttpSend>()?;
    m.add_class::<asgi::WebsocketReceive>()?;
    m.add_class::<asgi::WebsocketSend>()?;
    m.add_class::<rsgi::Scope>()?;
    m.add_class::<rsgi::Headers>()?;
    m.add_class::<rsgi::HttpProtocol>()?;
    m.add_class::<rsgi::BodyChunks>()?;
    m.add_class::<rsgi::StreamTransport>()?;
    m.add_class::<rsgi::WebsocketProtocol>()?;
    m.add_class::<rsgi::WebsocketTransport>()?;
    m.add_class::<rsgi::WebsocketMessage>()?;
    m.add("RSGI_VERSION", rsgi::RSGI_VERSION)?;
    m.add_class::<wsgi::Input>()?;
    m.add_class::<wsgi::StartResponse>()?;
    m.add_class::<wsgi::Write>()?;
    m.add_class::<wsgi::FileWrapper>()?;
    m.add(
        "ClientDisconnected",
        m.py().get_type::<bridge::ClientDisconnected>(),
    )?;
    m.add_function(wrap_pyfunction!(bridge::deferred_release_count, m)?)?;
    Ok(())
}
