//! Listening, accepting, serving connections with hyper, and stopping.

mod accept;
mod runtime;
mod worker;

use std::future::Future;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::http::{ConnInfo, ResponseBody};

pub use accept::HttpOptions;
pub use worker::Worker;

/// An interface's entry point: turns one request into one response.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        req: Request<Incoming>,
        conn: &Arc<ConnInfo>,
    ) -> impl Future<Output = Response<ResponseBody>> + Send;
}
