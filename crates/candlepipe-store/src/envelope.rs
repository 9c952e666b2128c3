//! The signed envelope every Redis value travels in (SPEC §4).
//!
//! `{f: format, kid: key id, ver: write version, wt: write time, body, mac}` as MessagePack.
//! The MAC is HMAC-SHA256 over every field *and the Redis key*, so a value copied to another
//! key fails verification as surely as an edited one.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use hmac::Mac;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use bytes::Bytes;

use crate::verified::{KeptValue, Verified};

type HmacSha256 = hmac::Hmac<Sha256>;

/// 2: chunk bodies are packed candles ([`crate::packed`]). 3: the meta names each chunk's
/// write version. 4: coverage means confirmed, and the meta keeps open times asked but not
/// confirmed and the exchange's history start. 5: each chunk comes with its runs of reply
/// fragments. 6: candles keep the exchange's extra fields (quote volume, trades, taker
/// buys, vwap). 7: candles may be built from trades (Kraken's history), and Kraken's
/// history start is no longer its OHLC's 720th row. Values of an older format are dropped and refetched as plain misses, not
/// counted as tampering.
pub const FORMAT_VERSION: u8 = 7;

/// The HMAC keys: the current one signs, every one verifies (so keys can rotate).
#[derive(Clone)]
pub struct Keyring {
    current_id: Arc<str>,
    /// Each key's HMAC already keyed (its pads hashed once, not per value).
    keys: Arc<HashMap<String, HmacSha256>>,
    /// Values that verified, so identical bytes read again are not MAC'd again.
    verified: Arc<Verified>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Keyring")
            .field("current_id", &self.current_id)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("verified_bytes", &self.verified.bytes())
            .finish()
    }
}

impl Keyring {
    pub fn new(current_id: &str, current_key: &[u8]) -> Self {
        Keyring {
            current_id: current_id.into(),
            keys: Arc::new(HashMap::new()),
            verified: Arc::new(Verified::new(0)),
        }
        .with_previous(current_id, current_key)
    }

    /// Keeps up to `capacity` bytes of values that verified (see [`crate::verified`]).
    pub fn remembering(mut self, capacity: usize) -> Self {
        self.verified = Arc::new(Verified::new(capacity));
        self
    }

    /// Bytes of verified values kept.
    pub fn verified_bytes(&self) -> usize {
        self.verified.bytes()
    }

    /// Adds a key that verifies but does not sign: one of before a rotation, or of after it
    /// while it rolls out.
    pub fn with_previous(mut self, id: &str, key: &[u8]) -> Self {
        // HMAC takes a key of any length.
        if let Ok(mac) = HmacSha256::new_from_slice(key) {
            Arc::make_mut(&mut self.keys)
                .entry(id.to_string())
                .or_insert(mac);
        }
        self
    }

    pub fn current_id(&self) -> &str {
        &self.current_id
    }

    fn mac(
        &self,
        kid: &str,
        redis_key: &str,
        ver: u64,
        wt: i64,
        body: &[u8],
    ) -> Option<HmacSha256> {
        let mut mac = self.keys.get(kid)?.clone();
        mac.update(&[FORMAT_VERSION]);
        for part in [kid.as_bytes(), redis_key.as_bytes(), body] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(&ver.to_be_bytes());
        mac.update(&wt.to_be_bytes());
        Some(mac)
    }

    /// Signs `body` for storage under `redis_key`.
    pub fn seal(&self, redis_key: &str, ver: u64, wt: i64, body: &[u8]) -> Vec<u8> {
        let mac = self
            .mac(&self.current_id, redis_key, ver, wt, body)
            .map(|m| m.finalize().into_bytes().to_vec())
            .unwrap_or_default();
        let env = Envelope {
            f: FORMAT_VERSION,
            kid: Cow::Borrowed(&self.current_id),
            ver,
            wt,
            body: Cow::Borrowed(body),
            mac: Cow::Owned(mac),
        };
        rmp_serde::to_vec_named(&env).unwrap_or_default()
    }

    /// The value this process verified and kept last under `redis_key`, if still kept: a
    /// read takes it instead of reading the key if the meta names its version
    /// ([`crate::verified`]).
    pub fn latest(&self, redis_key: &str) -> Option<KeptValue> {
        self.verified.latest(redis_key)
    }

    /// Checks a stored value; anything that does not verify is an error, never data. Bytes
    /// identical to a value that verified under the same key before are not MAC'd again
    /// ([`crate::verified`]).
    pub fn open<'a>(&self, redis_key: &str, bytes: &'a [u8]) -> Result<Opened<'a>, Tampered> {
        self.verify(redis_key, bytes, || Bytes::copy_from_slice(bytes))
    }

    /// [`Keyring::open`] for a value as a read found it: one Redis sent is verified (and
    /// kept without a copy); a kept one was verified under its key when it was kept.
    pub fn open_stored<'a>(
        &self,
        redis_key: &str,
        stored: &'a Stored,
    ) -> Result<Opened<'a>, Tampered> {
        match stored {
            Stored::Sent(bytes) => self.verify(redis_key, bytes, || bytes.clone()),
            Stored::Kept(kept) if kept.redis_key() == redis_key => {
                decode(kept.bytes()).map(Opened::from)
            }
            // Kept under another key: its MAC does not cover this one.
            Stored::Kept(_) => Err(Tampered::BadMac),
        }
    }

    fn verify<'a>(
        &self,
        redis_key: &str,
        bytes: &'a [u8],
        to_keep: impl FnOnce() -> Bytes,
    ) -> Result<Opened<'a>, Tampered> {
        let env = decode(bytes)?;
        if !self.verified.holds(&env.mac, redis_key, bytes) {
            let mac = self
                .mac(&env.kid, redis_key, env.ver, env.wt, &env.body)
                .ok_or_else(|| Tampered::UnknownKey(env.kid.to_string()))?;
            mac.verify_slice(&env.mac).map_err(|_| Tampered::BadMac)?;
            self.verified.keep(&env.mac, redis_key, &to_keep());
        }
        Ok(Opened::from(env))
    }
}

/// Decodes an envelope of the current format, not yet verified.
fn decode(bytes: &[u8]) -> Result<Envelope<'_>, Tampered> {
    let env: Envelope = rmp_serde::from_slice(bytes).map_err(|_| Tampered::Undecodable)?;
    // Nothing may follow the envelope: `seal` writes the MAC last, borrowed from the input
    // by the zero-copy decoder, so it must end where the input ends.
    let mac_end = match &env.mac {
        Cow::Borrowed(mac) => {
            (mac.as_ptr() as usize + mac.len()).checked_sub(bytes.as_ptr() as usize)
        }
        Cow::Owned(_) => None,
    };
    if mac_end != Some(bytes.len()) {
        return Err(Tampered::Undecodable);
    }
    if env.f != FORMAT_VERSION {
        return Err(Tampered::Format(env.f));
    }
    Ok(env)
}

impl<'a> From<Envelope<'a>> for Opened<'a> {
    fn from(env: Envelope<'a>) -> Self {
        Opened {
            version: env.ver,
            written_at: env.wt,
            body: env.body,
        }
    }
}

/// A value as a read found it.
#[derive(Debug, Clone)]
pub enum Stored {
    /// The bytes Redis sent.
    Sent(Bytes),
    /// The value this process kept for the key, taken instead of reading it (whether it is
    /// of the version the meta names is the reader's to check).
    Kept(KeptValue),
}

impl Stored {
    pub fn bytes(&self) -> &Bytes {
        match self {
            Stored::Sent(bytes) => bytes,
            Stored::Kept(kept) => kept.bytes(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope<'a> {
    f: u8,
    #[serde(borrow)]
    kid: Cow<'a, str>,
    ver: u64,
    wt: i64,
    #[serde(with = "serde_bytes", borrow)]
    body: Cow<'a, [u8]>,
    #[serde(with = "serde_bytes", borrow)]
    mac: Cow<'a, [u8]>,
}

/// Why a stored value cannot be used. None is ever served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// Written by an older version of candlepipe: deleted quietly, a plain miss.
    Outdated(u8),
    /// Signed with a key id this worker does not hold (e.g. another worker's new key during
    /// a rotation): left in place; the next write replaces it.
    ForeignKey(String),
    /// A chunk that is not the one its series' meta names (an older write put back, or one
    /// racing this read): left in place; the next write replaces it.
    NotCurrent(String),
    /// Failed verification or decoding: deleted, counted and logged as tampering.
    Tampered(String),
}

impl From<Tampered> for Unusable {
    fn from(t: Tampered) -> Self {
        match t {
            Tampered::Format(f) if f < FORMAT_VERSION => Unusable::Outdated(f),
            Tampered::UnknownKey(kid) => Unusable::ForeignKey(kid),
            other => Unusable::Tampered(other.to_string()),
        }
    }
}

impl Unusable {
    /// A verified body that does not decode.
    pub fn undecodable(e: impl std::fmt::Display) -> Self {
        Unusable::Tampered(format!("body undecodable: {e}"))
    }
}

/// A verified value; its body borrows from the bytes read.
#[derive(Debug)]
pub struct Opened<'a> {
    pub version: u64,
    pub written_at: i64,
    pub body: Cow<'a, [u8]>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Tampered {
    #[error("not an envelope")]
    Undecodable,
    #[error("unknown envelope format {0}")]
    Format(u8),
    #[error("signed with key id {0:?}, which this worker does not hold")]
    UnknownKey(String),
    #[error("HMAC does not verify")]
    BadMac,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sealed` with any one bit of any byte flipped does not open under `key`.
    fn every_flip_fails(ring: &Keyring, key: &str, sealed: &[u8]) {
        for i in 0..sealed.len() {
            let mut bad = sealed.to_vec();
            bad[i] ^= 0x01;
            assert!(
                ring.open(key, &bad).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn sealed_values_open_only_under_their_key_and_unaltered() {
        let ring = Keyring::new("k1", b"secret");
        let sealed = ring.seal("cp:a", 7, 99, b"hello");
        let opened = ring.open("cp:a", &sealed).unwrap();
        assert_eq!(
            (opened.version, opened.written_at, &opened.body[..]),
            (7, 99, &b"hello"[..])
        );
        assert_eq!(ring.open("cp:b", &sealed).unwrap_err(), Tampered::BadMac);
        let mut longer = sealed.clone();
        longer.push(0);
        assert_eq!(
            ring.open("cp:a", &longer).unwrap_err(),
            Tampered::Undecodable
        );
        every_flip_fails(&ring, "cp:a", &sealed);
        assert_eq!(
            Keyring::new("k1", b"other")
                .open("cp:a", &sealed)
                .unwrap_err(),
            Tampered::BadMac
        );
    }

    #[test]
    fn remembered_values_open_again_and_altered_ones_still_fail() {
        let ring = Keyring::new("k1", b"secret").remembering(1 << 20);
        let sealed = ring.seal("cp:a", 7, 99, b"hello");
        assert!(ring.open("cp:a", &sealed).is_ok());
        assert!(ring.verified_bytes() > sealed.len(), "kept once verified");
        let again = ring.open("cp:a", &sealed).unwrap();
        assert_eq!((again.version, &again.body[..]), (7, &b"hello"[..]));
        assert_eq!(ring.open("cp:b", &sealed).unwrap_err(), Tampered::BadMac);
        every_flip_fails(&ring, "cp:a", &sealed);
        // A value signed under another key never enters, whatever its MAC field says.
        let forged = Keyring::new("k1", b"other").seal("cp:a", 7, 99, b"hello");
        assert_eq!(ring.open("cp:a", &forged).unwrap_err(), Tampered::BadMac);
        assert_eq!(ring.open("cp:a", &forged).unwrap_err(), Tampered::BadMac);
    }

    #[test]
    fn older_formats_are_outdated_and_unknown_ones_tampered() {
        let ring = Keyring::new("k1", b"secret");
        let with_format = |f: u8| {
            let env = Envelope {
                f,
                kid: Cow::Borrowed("k1"),
                ver: 1,
                wt: 1,
                body: Cow::Borrowed(b"x"),
                mac: Cow::Borrowed(b""),
            };
            rmp_serde::to_vec_named(&env).unwrap()
        };
        let why = |f: u8| Unusable::from(ring.open("cp:a", &with_format(f)).unwrap_err());
        assert_eq!(
            why(FORMAT_VERSION - 1),
            Unusable::Outdated(FORMAT_VERSION - 1)
        );
        assert!(matches!(why(FORMAT_VERSION + 1), Unusable::Tampered(_)));
    }

    #[test]
    fn rotated_keys_still_verify_old_values() {
        let old = Keyring::new("k1", b"old");
        let sealed = old.seal("cp:a", 1, 1, b"x");
        let new = Keyring::new("k2", b"new").with_previous("k1", b"old");
        assert!(new.open("cp:a", &sealed).is_ok());
        let unknown = Keyring::new("k2", b"new")
            .open("cp:a", &sealed)
            .unwrap_err();
        assert_eq!(unknown, Tampered::UnknownKey("k1".into()));
        assert_eq!(Unusable::from(unknown), Unusable::ForeignKey("k1".into()));
    }
}
