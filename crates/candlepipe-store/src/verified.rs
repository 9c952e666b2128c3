//! Values this process has already verified, so the same bytes are not MAC'd twice, nor
//! read twice.
//!
//! Every value read from Redis is verified before any of it is served (SPEC §4). A stored
//! run stays current for as long as its chunk is not rewritten, and a Redis hit reads it
//! again on every request: computing its HMAC-SHA256 each time was most of a Redis hit's
//! CPU (BENCHMARKS.md §11), and reading its bytes again most of what was left (§15). A
//! value that verified is kept here, up to a byte budget, under its MAC and as the latest
//! kept under its Redis key. Then:
//! - bytes read under a key that are identical to a value kept under that key are verified
//!   by comparing them ([`Verified::holds`]);
//! - a read does not ask Redis for a key whose latest kept value ([`Verified::latest`]) is
//!   of the write version the series' meta, read and verified with it, names for it: that
//!   value is served. A write version is written once per key (writes swap a chunk and its
//!   runs in under a new version, and a series' first version is its write time in
//!   microseconds, so a Redis that lost its data does not name old versions again); a kept
//!   value of another version is read again.
//!
//! What is served is always a value this process verified under that key: only values
//! that verified enter, a kept value is matched on the Redis key it verified under (its MAC
//! covers that key), and the keyring a process verifies with never changes while it runs
//! (keys are added or retired by restarting), so the bytes served would verify again.
//! Whoever can write to Redis gains nothing: to be served from here, bytes must be a value
//! candlepipe signed for that key at the version the verified meta names, which the MAC and
//! the version check accept too. What such a writer puts under a kept key is neither served
//! nor noticed by this process while the meta names the kept version (another process
//! without the copy discards it as tampered, and the next write replaces it). The
//! comparison is not constant-time; what it could reveal is how much of a value matches
//! one that is stored in Redis in the clear.
//!
//! Values are dropped oldest first once the budget is full (`CANDLEPIPE_VERIFIED_CAPACITY`;
//! 0 keeps none and verifies every read in full).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// An HMAC-SHA256 tag.
type Tag = [u8; 32];

/// What each kept value costs beyond its bytes and key (map and queue entries).
const ENTRY_OVERHEAD: usize = 128;

pub struct Verified {
    capacity: usize,
    inner: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    by_tag: HashMap<Tag, Value>,
    /// The tag of the value kept last under each Redis key.
    latest: HashMap<Arc<str>, Tag>,
    /// Tags in the order they were kept: the first is dropped first.
    order: VecDeque<Tag>,
    bytes: usize,
}

struct Value {
    redis_key: Arc<str>,
    bytes: Bytes,
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

/// A value this process verified under a Redis key, as kept: what a read offers Redis as
/// what the key may still hold. Only [`Verified::latest`] makes one.
#[derive(Clone, Debug)]
pub struct KeptValue {
    redis_key: Arc<str>,
    bytes: Bytes,
}

impl KeptValue {
    /// The Redis key it verified under.
    pub fn redis_key(&self) -> &str {
        &self.redis_key
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
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

    /// The value kept last under `redis_key`, if any is still kept.
    pub fn latest(&self, redis_key: &str) -> Option<KeptValue> {
        if self.capacity == 0 {
            return None;
        }
        let kept = self.kept();
        let tag = kept.latest.get(redis_key)?;
        let value = kept.by_tag.get(tag)?;
        (*value.redis_key == *redis_key).then(|| KeptValue {
            redis_key: value.redis_key.clone(),
            bytes: value.bytes.clone(),
        })
    }

    /// Keeps `bytes`, which verified under `redis_key` with MAC `tag` (sharing them, not
    /// copying).
    pub fn keep(&self, tag: &[u8], redis_key: &str, bytes: &Bytes) {
        let Ok(tag) = Tag::try_from(tag) else {
            return;
        };
        let cost = cost(redis_key, bytes);
        if cost > self.capacity {
            return;
        }
        let mut kept = self.kept();
        if let Some(known) = kept.by_tag.get(&tag) {
            let known = known.redis_key.clone();
            kept.latest.insert(known, tag);
            return;
        }
        while kept.bytes + cost > self.capacity {
            let Some(oldest) = kept.order.pop_front() else {
                break;
            };
            if let Some(gone) = kept.by_tag.remove(&oldest) {
                kept.bytes -= gone.cost();
                if kept.latest.get(&gone.redis_key) == Some(&oldest) {
                    kept.latest.remove(&gone.redis_key);
                }
            }
        }
        let redis_key: Arc<str> = redis_key.into();
        kept.latest.insert(redis_key.clone(), tag);
        let value = Value {
            redis_key,
            bytes: bytes.clone(),
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
        v.keep(&tag, "cp:a", &Bytes::from_static(b"value"));
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
            v.keep(&[i; 32], &format!("cp:{i}"), &Bytes::from(vec![i; 1000]));
            assert!(v.bytes() <= 3 * one);
        }
        let held: Vec<bool> = (0..5u8)
            .map(|i| v.holds(&[i; 32], &format!("cp:{i}"), &[i; 1000]))
            .collect();
        assert_eq!(held, [false, false, true, true, true]);
        assert_eq!(v.bytes(), 3 * one);
        let latest: Vec<bool> = (0..5u8)
            .map(|i| v.latest(&format!("cp:{i}")).is_some())
            .collect();
        assert_eq!(
            latest,
            [false, false, true, true, true],
            "dropped with its value"
        );
    }

    #[test]
    fn the_latest_is_the_value_kept_last_under_a_key() {
        let v = Verified::new(1 << 20);
        assert!(v.latest("cp:a").is_none());
        v.keep(&[1; 32], "cp:a", &Bytes::from_static(b"first"));
        v.keep(&[2; 32], "cp:a", &Bytes::from_static(b"second"));
        v.keep(&[3; 32], "cp:b", &Bytes::from_static(b"other"));
        let latest = v.latest("cp:a").unwrap();
        assert_eq!(
            (latest.redis_key(), &latest.bytes()[..]),
            ("cp:a", &b"second"[..])
        );
        // Kept again (read back after a newer one): the latest once more.
        v.keep(&[1; 32], "cp:a", &Bytes::from_static(b"first"));
        assert_eq!(&v.latest("cp:a").unwrap().bytes()[..], b"first");
        assert_eq!(&v.latest("cp:b").unwrap().bytes()[..], b"other");
    }

    #[test]
    fn a_dropped_older_value_leaves_the_latest_of_its_key() {
        let one = "cp:a".len() + 100 + ENTRY_OVERHEAD;
        let v = Verified::new(2 * one);
        v.keep(&[1; 32], "cp:a", &Bytes::from(vec![1; 100]));
        v.keep(&[2; 32], "cp:a", &Bytes::from(vec![2; 100]));
        v.keep(&[3; 32], "cp:b", &Bytes::from(vec![3; 100]));
        assert_eq!(&v.latest("cp:a").unwrap().bytes()[..], &[2; 100]);
        assert_eq!(&v.latest("cp:b").unwrap().bytes()[..], &[3; 100]);
    }

    #[test]
    fn nothing_is_kept_without_room() {
        let v = Verified::new(0);
        v.keep(&[1; 32], "cp:a", &Bytes::from_static(b"x"));
        assert!(v.latest("cp:a").is_none());
        assert!(!v.holds(&[1; 32], "cp:a", b"x"));
        assert_eq!(v.bytes(), 0);
        let small = Verified::new(50);
        small.keep(&[1; 32], "cp:a", &Bytes::from(vec![0; 100]));
        assert_eq!(
            small.bytes(),
            0,
            "a value larger than the budget is not kept"
        );
    }
}
