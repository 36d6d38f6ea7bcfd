//! Reading the request body for an RSGI app: what a read finds now, and how
//! a read that had to wait goes on when more arrives. `HttpCall` calls
//! these with its state locked, and keeps the waiting read.

use bytes::{Bytes, BytesMut};
use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;

use crate::bridge::{PyObj, client_disconnected};
use crate::http::{RequestBody, Take};

/// A pending read of the request body.
pub(crate) enum BodyWaiter {
    /// `await protocol()`: the whole body, gathered here as it arrives.
    Whole(PyObj, BytesMut),
    /// `async for chunk in protocol`: the next piece.
    Chunk(PyObj),
}

/// What a body read has for the app.
#[derive(Debug)]
pub(crate) enum Got<'py> {
    Bytes(Bytes),
    /// A future the bytes (or the error) will come through.
    Later(Bound<'py, PyAny>),
}

/// What the body has right now. Called with the `HttpCall` locked, so that
/// the wake-up registered here cannot be missed.
pub(crate) enum Read {
    Chunk(Bytes),
    End,
    Gone,
    Wait,
}

/// How far [`gather`] got.
pub(crate) enum Gathered {
    Complete,
    Partial,
    Gone,
}

/// What a pending read does next.
pub(crate) enum Step {
    /// Still waiting: the call keeps it.
    Wait(BodyWaiter),
    /// Done: the future gets the bytes or the error.
    Settle(PyObj, PyResult<Bytes>),
}

/// Takes what `body` has; `wake` makes the callback that runs once it has
/// more (a read that must wait leaves that callback with the body).
pub(crate) fn read_now<W>(body: &RequestBody, disconnected: bool, wake: impl FnOnce() -> W) -> Read
where
    W: FnOnce() + Send + 'static,
{
    if disconnected {
        return Read::Gone;
    }
    match body.take(wake()) {
        Take::Data { body: chunk, .. } if !chunk.is_empty() => Read::Chunk(chunk),
        // An empty last piece only says "end".
        Take::Data { .. } | Take::Finished => {
            if body.is_complete() {
                Read::End
            } else {
                Read::Wait
            }
        }
        Take::Failed => Read::Gone,
        Take::Pending => Read::Wait,
    }
}

/// Gathers what `body` has into `acc`.
pub(crate) fn gather<W>(
    body: &RequestBody,
    disconnected: bool,
    acc: &mut BytesMut,
    wake: impl Fn() -> W,
) -> Gathered
where
    W: FnOnce() + Send + 'static,
{
    loop {
        match read_now(body, disconnected, &wake) {
            Read::Chunk(chunk) => acc.extend_from_slice(&chunk),
            Read::End => return Gathered::Complete,
            Read::Wait => return Gathered::Partial,
            Read::Gone => return Gathered::Gone,
        }
    }
}

impl BodyWaiter {
    pub(crate) fn future(&self) -> &PyObj {
        match self {
            Self::Whole(future, _) | Self::Chunk(future) => future,
        }
    }

    /// The read goes on: data arrived, or the client left.
    pub(crate) fn advance<W>(
        self,
        body: &RequestBody,
        disconnected: bool,
        wake: impl Fn() -> W,
    ) -> Step
    where
        W: FnOnce() + Send + 'static,
    {
        match self {
            Self::Whole(future, mut acc) => match gather(body, disconnected, &mut acc, wake) {
                Gathered::Partial => Step::Wait(Self::Whole(future, acc)),
                Gathered::Complete => Step::Settle(future, Ok(acc.freeze())),
                Gathered::Gone => Step::Settle(future, Err(client_disconnected())),
            },
            Self::Chunk(future) => match read_now(body, disconnected, wake) {
                Read::Wait => Step::Wait(Self::Chunk(future)),
                Read::Chunk(chunk) => Step::Settle(future, Ok(chunk)),
                Read::End => Step::Settle(future, Err(PyStopAsyncIteration::new_err(()))),
                Read::Gone => Step::Settle(future, Err(client_disconnected())),
            },
        }
    }
}
