//! Values this process has already verified, so the same bytes are not MAC'd twice.
//!
//! Every value read from Redis is verified before any of it is served (SPEC §4). A stored
//! run stays current for as long as its chunk is not rewritten, and a Redis hit reads it
//! again on every request: computing its HMAC-SHA256 each time was most of a Redis hit's
//! CPU (BENCHMARKS.md §11). A value that verified is kept here, up to a byte budget, under
//! its MAC; a later value read under the same Redis key whose bytes are identical to a kept
//! one is verified by comparing them.
//!
//! What this accepts is a subset of what the HMAC accepts: only values that verified enter, a
//! kept value is matched on every byte and on the Redis key it verified under (its MAC
//! covers that key), and the keyring a process verifies with never changes while it runs
//! (keys are added or retired by restarting), so the same bytes would verify again. Whoever
//! can write to Redis gains nothing: to be accepted here, bytes must be a value candlepipe
//! signed for that key, which the MAC accepts too (and which the version checks against the
//! meta judge as before). The comparison is not constant-time; what it could reveal is how
//! much of a value matches one that is stored in Redis in the clear.
//!
//! Values are dropped oldest first once the budget is full (`CANDLEPIPE_VERIFIED_CAPACITY`;
//! 0 keeps none and verifies every read).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// An HMAC-SHA256 tag.
type Tag = [u8; 32];

/// What each kept value costs beyond its bytes and key (map and queue entries).
const ENTRY_OVERHEAD: usize = 96;

pub struct Verified {
    capacity: usize,
    inner: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    by_tag: HashMap<Tag, Value>,
    /// Tags in the order they were kept: the first is dropped first.
    order: VecDeque<Tag>,
    bytes: usize,
}

struct Value {
    redis_key: Box<str>,
    bytes: Box<[u8]>,
}

impl Value {
    fn cost(&self) -> usize {
        cost(&self.redis_key, &self.bytes)
    }
}

/// What keeping `bytes` under `redis_key` counts against the budget.
fn cost(redis_key: &str, bytes: &[u8]) -> usize {
    redis_key.len() + bytes.len() + ENTRY_OVERHEAD
}

impl Verified {
    /// Keeps at most `capacity` bytes of values (0: none).
    pub fn new(capacity: usize) -> Self {
        Verified {
            capacity,
            inner: Mutex::default(),
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        // Nothing here is left half-done by a panic: every change completes under the lock.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `bytes`, read under `redis_key` with MAC `tag`, are a value this process
    /// verified under that key.
    pub fn holds(&self, tag: &[u8], redis_key: &str, bytes: &[u8]) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let Ok(tag) = Tag::try_from(tag) else {
            return false;
        };
        self.kept()
            .by_tag
            .get(&tag)
            .is_some_and(|v| *v.redis_key == *redis_key && *v.bytes == *bytes)
    }

    /// Keeps `bytes`, which verified under `redis_key` with MAC `tag`.
    pub fn keep(&self, tag: &[u8], redis_key: &str, bytes: &[u8]) {
        let Ok(tag) = Tag::try_from(tag) else {
            return;
        };
        let cost = cost(redis_key, bytes);
        if cost > self.capacity {
            return;
        }
        let mut kept = self.kept();
        if kept.by_tag.contains_key(&tag) {
            return;
        }
        while kept.bytes + cost > self.capacity {
            let Some(oldest) = kept.order.pop_front() else {
                break;
            };
            if let Some(gone) = kept.by_tag.remove(&oldest) {
                kept.bytes -= gone.cost();
            }
        }
        let value = Value {
            redis_key: redis_key.into(),
            bytes: bytes.into(),
        };
        kept.by_tag.insert(tag, value);
        kept.order.push_back(tag);
        kept.bytes += cost;
    }

    /// Bytes kept now.
    pub fn bytes(&self) -> usize {
        self.kept().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_only_the_same_bytes_under_the_same_key() {
        let v = Verified::new(1 << 20);
        let tag = [7u8; 32];
        v.keep(&tag, "cp:a", b"value");
        assert!(v.holds(&tag, "cp:a", b"value"));
        assert!(!v.holds(&tag, "cp:b", b"value"), "another key");
        assert!(!v.holds(&tag, "cp:a", b"valuf"), "other bytes");
        assert!(!v.holds(&tag, "cp:a", b"value!"), "longer");
        assert!(!v.holds(&[8u8; 32], "cp:a", b"value"), "another tag");
        assert!(!v.holds(&tag[..31], "cp:a", b"value"), "a short tag");
    }

    #[test]
    fn the_oldest_go_first_and_the_budget_holds() {
        let one = "cp:0".len() + 1000 + ENTRY_OVERHEAD;
        let v = Verified::new(3 * one);
        for i in 0..5u8 {
            v.keep(&[i; 32], &format!("cp:{i}"), &[i; 1000]);
            assert!(v.bytes() <= 3 * one);
        }
        let held: Vec<bool> = (0..5u8)
            .map(|i| v.holds(&[i; 32], &format!("cp:{i}"), &[i; 1000]))
            .collect();
        assert_eq!(held, [false, false, true, true, true]);
        assert_eq!(v.bytes(), 3 * one);
    }

    #[test]
    fn nothing_is_kept_without_room() {
        let v = Verified::new(0);
        v.keep(&[1; 32], "cp:a", b"x");
        assert!(!v.holds(&[1; 32], "cp:a", b"x"));
        assert_eq!(v.bytes(), 0);
        let small = Verified::new(50);
        small.keep(&[1; 32], "cp:a", &[0; 100]);
        assert_eq!(
            small.bytes(),
            0,
            "a value larger than the budget is not kept"
        );
    }
}
