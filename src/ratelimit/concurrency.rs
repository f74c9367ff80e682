//! Per-client concurrency limits, counted in this process: a slot is taken before the request
//! goes on and given back when its [`Slot`] is dropped, which the response body carries
//! ([`SlotBody`]) so a streamed response holds the slot until it has been sent in full or the
//! client has gone (hyper drops the body either way).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// In-flight requests per key for one limit; a key with none is removed, so the map holds
/// only clients with requests in flight.
#[derive(Debug, Default)]
pub struct InFlight {
    counts: Mutex<HashMap<Arc<str>, u32>>,
}

/// One held slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct Slot {
    inflight: Arc<InFlight>,
    key: Arc<str>,
}

impl InFlight {
    /// A slot for `key` if it has fewer than `max` in flight.
    pub fn acquire(self: &Arc<Self>, key: &Arc<str>, max: u32) -> Option<Slot> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(key.clone()).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Slot {
            inflight: self.clone(),
            key: key.clone(),
        })
    }

    /// Requests in flight for `key`.
    pub fn count(&self, key: &str) -> u32 {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.get(key).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .inflight
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// A response body holding the request's slots until it is dropped.
#[derive(Debug)]
pub struct SlotBody<B> {
    inner: B,
    _slots: Vec<Slot>,
}

impl<B> SlotBody<B> {
    pub fn new(inner: B, slots: Vec<Slot>) -> Self {
        Self {
            inner,
            _slots: slots,
        }
    }
}

/// A body the gateway writes itself holds no slot.
impl<B: From<Bytes>> From<Bytes> for SlotBody<B> {
    fn from(bytes: Bytes) -> Self {
        Self::new(B::from(bytes), Vec::new())
    }
}

impl<B: Body + Unpin> Body for SlotBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_given_back_when_dropped_and_empty_keys_removed() {
        let inflight = Arc::new(InFlight::default());
        let key: Arc<str> = "client".into();
        let first = inflight.acquire(&key, 2).expect("first");
        let second = inflight.acquire(&key, 2).expect("second");
        assert!(inflight.acquire(&key, 2).is_none());
        assert!(inflight.acquire(&"other".into(), 2).is_some());
        drop(first);
        let third = inflight.acquire(&key, 2).expect("a slot again");
        drop((second, third));
        assert_eq!(inflight.count("client"), 0);
        assert!(inflight.counts.lock().unwrap().is_empty());
    }
}
