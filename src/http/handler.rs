//! [`Handler`]: what an interface gives the server: one request in, one
//! response out.

use std::future::Future;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response};

use super::{ConnInfo, ResponseBody};

/// An interface's entry point: turns one request into one response.
pub(crate) trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        req: Request<Incoming>,
        conn: &Arc<ConnInfo>,
    ) -> impl Future<Output = Response<ResponseBody>> + Send;
}
