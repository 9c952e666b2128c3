//! Support and resistance from swing pivots.
//!
//! A bar is a *swing high* when its high is above the highs of the `span` bars before it and
//! not below those of the `span` bars after it (of equal highs, the first counts); a *swing
//! low* likewise with lows. All pivot prices, highs and lows alike, are sorted and clustered:
//! a price within `tolerance` (a fraction, e.g. 0.005 = 0.5%) of its cluster's lowest price
//! joins that cluster; each cluster is one level, the mean of its prices. Levels below the
//! last close are support, nearest first; levels above it are resistance, nearest first. A
//! broken resistance therefore becomes support, as traders read charts.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Levels {
    pub support: Vec<f64>,
    pub resistance: Vec<f64>,
}

/// Prices of every swing high and swing low, in bar order (highs before lows at one bar).
pub fn pivots(high: &[f64], low: &[f64], span: usize) -> Vec<f64> {
    let len = high.len().min(low.len());
    if span == 0 || len < 2 * span + 1 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for i in span..len - span {
        let (before, after) = (i - span..i, i + 1..=i + span);
        if before.clone().all(|j| high[i] > high[j]) && after.clone().all(|j| high[i] >= high[j]) {
            out.push(high[i]);
        }
        if before.clone().all(|j| low[i] < low[j]) && after.clone().all(|j| low[i] <= low[j]) {
            out.push(low[i]);
        }
    }
    out
}

/// Clusters `prices` within `tolerance` of each cluster's lowest price; the means, ascending.
pub fn cluster(prices: &[f64], tolerance: f64) -> Vec<f64> {
    let mut sorted: Vec<f64> = prices.iter().copied().filter(|p| p.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let mut levels = Vec::new();
    let mut group: Vec<f64> = Vec::new();
    for p in sorted {
        if let Some(first) = group.first() {
            if p > first * (1.0 + tolerance) {
                levels.push(group.iter().sum::<f64>() / group.len() as f64);
                group.clear();
            }
        }
        group.push(p);
    }
    if !group.is_empty() {
        levels.push(group.iter().sum::<f64>() / group.len() as f64);
    }
    levels
}

/// Up to `max_each` support and resistance levels around `last_close`.
pub fn levels(
    high: &[f64],
    low: &[f64],
    last_close: f64,
    span: usize,
    tolerance: f64,
    max_each: usize,
) -> Levels {
    let all = cluster(&pivots(high, low, span), tolerance);
    Levels {
        support: all
            .iter()
            .rev()
            .copied()
            .filter(|l| *l < last_close)
            .take(max_each)
            .collect(),
        resistance: all
            .iter()
            .copied()
            .filter(|l| *l > last_close)
            .take(max_each)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pivots_by_hand() {
        //          0    1    2    3    4    5    6    7    8
        let high = [5.0, 6.0, 9.0, 6.0, 5.0, 7.0, 9.0, 7.0, 6.0];
        let low = [4.0, 3.0, 5.0, 4.0, 2.0, 4.0, 6.0, 5.0, 5.0];
        // span 2: bars 2..=6. Highs: bar 2 (9 > 5,6 and >= 6,5) and bar 6 (9 > 5,7; >= 7,6).
        // Lows: bar 4 (2 < 5,4 and <= 4,6).
        assert_eq!(pivots(&high, &low, 2), vec![9.0, 2.0, 9.0]);
        assert!(pivots(&high[..4], &low[..4], 2).is_empty());
    }

    #[test]
    fn clusters_and_sides() {
        // 100.25 is within 0.5% of 100; 101 is not.
        assert_eq!(
            cluster(&[100.25, 101.0, 100.0], 0.005),
            vec![100.125, 101.0]
        );
        let high = [5.0, 6.0, 9.0, 6.0, 5.0, 7.0, 9.0, 7.0, 6.0];
        let low = [4.0, 3.0, 5.0, 4.0, 2.0, 4.0, 6.0, 5.0, 5.0];
        let l = levels(&high, &low, 6.0, 2, 0.01, 3);
        assert_eq!(l.support, vec![2.0]);
        assert_eq!(l.resistance, vec![9.0]);
        let l = levels(&high, &low, 10.0, 2, 0.01, 1);
        assert_eq!(l.support, vec![9.0]);
        assert!(l.resistance.is_empty());
    }
}
