//! The per-symbol analysis: indicators, their classes and a rule-based signal.
//!
//! Rules (each a named constant below):
//! - **Trend** compares EMA20 with EMA50 and looks at EMA20's slope over the last
//!   [`SLOPE_BARS`] bars: bullish when EMA20 > EMA50 and the slope is up, bearish when
//!   EMA20 < EMA50 and the slope is down, neutral otherwise (or with too few bars).
//! - **Volatility** classes ATR14 as a percentage of the last close. The thresholds are
//!   [`LOW_DAILY_PCT`] and [`HIGH_DAILY_PCT`] for daily bars, scaled by
//!   `sqrt(bar minutes / 1440)` for other intervals (price moves grow with the square root of
//!   time), so 1h bars are low below 0.41% and high from 1.02%.
//! - **Signal**: RSI ≤ [`OVERSOLD`] is `buy` unless the trend is bearish; RSI ≥
//!   [`OVERBOUGHT`] is `sell` unless the trend is bullish; otherwise a bullish trend with the
//!   close above EMA20 is `buy`, a bearish trend with the close below EMA20 is `sell`, and
//!   everything else (including too little history for RSI) is `hold`.
//! - **Levels**: swing pivots with [`PIVOT_SPAN`] bars each side, clustered within
//!   [`LEVEL_TOLERANCE`], at most [`MAX_LEVELS`] each side (see [`crate::levels`]).

use serde::{Deserialize, Serialize};

use crate::levels::levels;
use crate::moving::ema;
use crate::oscillators::{atr, rsi};

pub const RSI_PERIOD: usize = 14;
pub const ATR_PERIOD: usize = 14;
pub const FAST_EMA: usize = 20;
pub const SLOW_EMA: usize = 50;
pub const SLOPE_BARS: usize = 5;
pub const OVERSOLD: f64 = 30.0;
pub const OVERBOUGHT: f64 = 70.0;
pub const LOW_DAILY_PCT: f64 = 2.0;
pub const HIGH_DAILY_PCT: f64 = 5.0;
pub const PIVOT_SPAN: usize = 3;
pub const LEVEL_TOLERANCE: f64 = 0.005;
pub const MAX_LEVELS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub high: f64,
    pub low: f64,
    pub close: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    Bullish,
    Bearish,
    Neutral,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Volatility {
    High,
    Medium,
    Low,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    Buy,
    Sell,
    Hold,
}

/// `None` where the series is too short for that indicator.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub last_close: f64,
    pub ema20: Option<f64>,
    pub ema50: Option<f64>,
    pub rsi14: Option<f64>,
    pub atr14: Option<f64>,
    pub atr_pct: Option<f64>,
    pub trend: Trend,
    pub volatility: Option<Volatility>,
    pub support: Vec<f64>,
    pub resistance: Vec<f64>,
    pub signal: Signal,
}

pub fn trend(fast: &[f64], slow: &[f64]) -> Trend {
    let (Some(f), Some(s)) = (fast.last(), slow.last()) else {
        return Trend::Neutral;
    };
    if fast.len() <= SLOPE_BARS {
        return Trend::Neutral;
    }
    let slope = f - fast[fast.len() - 1 - SLOPE_BARS];
    if f > s && slope > 0.0 {
        Trend::Bullish
    } else if f < s && slope < 0.0 {
        Trend::Bearish
    } else {
        Trend::Neutral
    }
}

pub fn volatility(atr_pct: f64, bar_minutes: u64) -> Volatility {
    let scale = (bar_minutes as f64 / 1440.0).sqrt();
    if atr_pct < LOW_DAILY_PCT * scale {
        Volatility::Low
    } else if atr_pct >= HIGH_DAILY_PCT * scale {
        Volatility::High
    } else {
        Volatility::Medium
    }
}

pub fn signal(rsi14: Option<f64>, trend: Trend, close: f64, ema20: Option<f64>) -> Signal {
    let Some(rsi) = rsi14 else {
        return Signal::Hold;
    };
    if rsi <= OVERSOLD {
        return if trend == Trend::Bearish {
            Signal::Hold
        } else {
            Signal::Buy
        };
    }
    if rsi >= OVERBOUGHT {
        return if trend == Trend::Bullish {
            Signal::Hold
        } else {
            Signal::Sell
        };
    }
    match (trend, ema20) {
        (Trend::Bullish, Some(e)) if close > e => Signal::Buy,
        (Trend::Bearish, Some(e)) if close < e => Signal::Sell,
        _ => Signal::Hold,
    }
}

/// Analyses `bars` (oldest first) of `bar_minutes` each; `None` for an empty series.
pub fn summarize(bars: &[Bar], bar_minutes: u64) -> Option<Summary> {
    let last_close = bars.last()?.close;
    let high: Vec<f64> = bars.iter().map(|b| b.high).collect();
    let low: Vec<f64> = bars.iter().map(|b| b.low).collect();
    let close: Vec<f64> = bars.iter().map(|b| b.close).collect();
    let fast = ema(&close, FAST_EMA);
    let slow = ema(&close, SLOW_EMA);
    let rsi14 = rsi(&close, RSI_PERIOD).last().copied();
    let atr14 = atr(&high, &low, &close, ATR_PERIOD).last().copied();
    let atr_pct = atr14
        .filter(|_| last_close > 0.0)
        .map(|a| a / last_close * 100.0);
    let trend = trend(&fast, &slow);
    let lv = levels(
        &high,
        &low,
        last_close,
        PIVOT_SPAN,
        LEVEL_TOLERANCE,
        MAX_LEVELS,
    );
    Some(Summary {
        last_close,
        ema20: fast.last().copied(),
        ema50: slow.last().copied(),
        rsi14,
        atr14,
        atr_pct,
        trend,
        volatility: atr_pct.map(|p| volatility(p, bar_minutes)),
        support: lv.support,
        resistance: lv.resistance,
        signal: signal(rsi14, trend, last_close, fast.last().copied()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trend_rules() {
        let up: Vec<f64> = (0..10).map(f64::from).collect();
        assert_eq!(trend(&up, &[5.0]), Trend::Bullish);
        assert_eq!(trend(&up, &[20.0]), Trend::Neutral, "below the slow EMA");
        let down: Vec<f64> = up.iter().rev().copied().collect();
        assert_eq!(trend(&down, &[5.0]), Trend::Bearish);
        assert_eq!(
            trend(&up[..5], &[0.0]),
            Trend::Neutral,
            "too short for a slope"
        );
    }

    #[test]
    fn volatility_scales_with_the_interval() {
        assert_eq!(volatility(1.9, 1440), Volatility::Low);
        assert_eq!(volatility(2.0, 1440), Volatility::Medium);
        assert_eq!(volatility(5.0, 1440), Volatility::High);
        // 1h: thresholds 2 * sqrt(1/24) = 0.408 and 5 * sqrt(1/24) = 1.0206
        assert_eq!(volatility(0.40, 60), Volatility::Low);
        assert_eq!(volatility(0.41, 60), Volatility::Medium);
        assert_eq!(volatility(1.03, 60), Volatility::High);
    }

    #[test]
    fn signal_rules() {
        use Signal::*;
        use Trend::*;
        assert_eq!(signal(Some(25.0), Neutral, 10.0, Some(11.0)), Buy);
        assert_eq!(signal(Some(25.0), Bearish, 10.0, Some(11.0)), Hold);
        assert_eq!(signal(Some(75.0), Neutral, 10.0, Some(9.0)), Sell);
        assert_eq!(signal(Some(75.0), Bullish, 10.0, Some(9.0)), Hold);
        assert_eq!(signal(Some(55.0), Bullish, 10.0, Some(9.0)), Buy);
        assert_eq!(signal(Some(55.0), Bullish, 10.0, Some(11.0)), Hold);
        assert_eq!(signal(Some(45.0), Bearish, 10.0, Some(11.0)), Sell);
        assert_eq!(signal(None, Bullish, 10.0, Some(9.0)), Hold);
    }

    #[test]
    fn short_series_give_none_not_panics() {
        let bars = [Bar {
            high: 2.0,
            low: 1.0,
            close: 1.5,
        }];
        let s = summarize(&bars, 60).unwrap();
        assert_eq!(
            (s.rsi14, s.atr14, s.ema20, s.volatility),
            (None, None, None, None)
        );
        assert_eq!((s.trend, s.signal), (Trend::Neutral, Signal::Hold));
        assert!(summarize(&[], 60).is_none());
    }
}
