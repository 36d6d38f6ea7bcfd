//! HTTP pieces shared by every interface: the connection facts a scope is
//! built from, the request body as it arrives, and the response body that
//! hyper writes out. Nothing here knows about Python.

mod conn;
mod exchange;
mod file;
mod head;
mod request_body;
mod response_body;
mod stream;

pub use conn::{COMMON_REQUEST_HEADERS, ConnInfo, ServerTasks};
pub use exchange::{Admitted, Reply, exchange};
pub use file::{FileRange, send_file, send_open_file};
pub use head::{append_header, response_head};
pub use request_body::{RequestBody, Take};
pub use response_body::{BodyAborted, ResponseBody, StreamItem, error_response};
pub use stream::{BUDGET, Queued, StreamSender, Weighed};
