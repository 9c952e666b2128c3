//! Candle intervals of the wire contract.

use serde::{Deserialize, Serialize};

use crate::exchange::truncate;
use crate::{ErrorCode, Millis, WireError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Interval {
    #[serde(rename = "1m")]
    M1,
    #[serde(rename = "3m")]
    M3,
    #[serde(rename = "5m")]
    M5,
    #[serde(rename = "15m")]
    M15,
    #[serde(rename = "30m")]
    M30,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "2h")]
    H2,
    #[serde(rename = "4h")]
    H4,
    #[serde(rename = "6h")]
    H6,
    #[serde(rename = "8h")]
    H8,
    #[serde(rename = "12h")]
    H12,
    #[serde(rename = "1d")]
    D1,
    #[serde(rename = "3d")]
    D3,
    #[serde(rename = "1w")]
    W1,
}

const MINUTE: Millis = 60_000;

impl Interval {
    pub const ALL: [Interval; 14] = [
        Interval::M1,
        Interval::M3,
        Interval::M5,
        Interval::M15,
        Interval::M30,
        Interval::H1,
        Interval::H2,
        Interval::H4,
        Interval::H6,
        Interval::H8,
        Interval::H12,
        Interval::D1,
        Interval::D3,
        Interval::W1,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Interval::M1 => "1m",
            Interval::M3 => "3m",
            Interval::M5 => "5m",
            Interval::M15 => "15m",
            Interval::M30 => "30m",
            Interval::H1 => "1h",
            Interval::H2 => "2h",
            Interval::H4 => "4h",
            Interval::H6 => "6h",
            Interval::H8 => "8h",
            Interval::H12 => "12h",
            Interval::D1 => "1d",
            Interval::D3 => "3d",
            Interval::W1 => "1w",
        }
    }

    pub fn minutes(self) -> i64 {
        match self {
            Interval::M1 => 1,
            Interval::M3 => 3,
            Interval::M5 => 5,
            Interval::M15 => 15,
            Interval::M30 => 30,
            Interval::H1 => 60,
            Interval::H2 => 120,
            Interval::H4 => 240,
            Interval::H6 => 360,
            Interval::H8 => 480,
            Interval::H12 => 720,
            Interval::D1 => 1440,
            Interval::D3 => 4320,
            Interval::W1 => 10080,
        }
    }

    pub fn millis(self) -> Millis {
        self.minutes() * MINUTE
    }

    /// Open time of the candle that contains `t`.
    ///
    /// Candles are aligned to the Unix epoch, except weekly ones, which open on Monday
    /// 00:00 UTC as on every exchange (the epoch was a Thursday).
    pub fn open_of(self, t: Millis) -> Millis {
        let offset = if self == Interval::W1 {
            4 * 1440 * MINUTE
        } else {
            0
        };
        (t - offset).div_euclid(self.millis()) * self.millis() + offset
    }

    pub fn parse(s: &str) -> Result<Interval, WireError> {
        Self::ALL.into_iter().find(|i| i.as_str() == s).ok_or_else(|| {
            WireError::new(
                ErrorCode::UnsupportedInterval,
                format!(
                    "unknown interval '{}'; expected one of 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w",
                    truncate(s, 20)
                ),
            )
        })
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for i in Interval::ALL {
            assert_eq!(Interval::parse(i.as_str()).unwrap(), i);
            let json = serde_json::to_string(&i).unwrap();
            assert_eq!(json, format!("\"{}\"", i.as_str()));
        }
        assert_eq!(
            Interval::parse("2m").unwrap_err().code,
            ErrorCode::UnsupportedInterval
        );
    }

    #[test]
    fn open_times_align() {
        assert_eq!(Interval::M1.open_of(1_764_000_059_999), 1_764_000_000_000);
        assert_eq!(Interval::H1.open_of(3_600_000 * 5 + 1), 3_600_000 * 5);
        // 2024-01-01 was a Monday: 1704067200000.
        assert_eq!(
            Interval::W1.open_of(1_704_067_200_000 + 3 * 86_400_000),
            1_704_067_200_000
        );
    }
}
