//! RSI and ATR with Wilder's smoothing, as TA-Lib computes them.

/// Wilder's smoothing of `values`: the first output is the mean of the first `n`, then
/// `prev + (x - prev) / n`. Lookback `n - 1`.
fn wilder(values: &[f64], n: usize) -> Vec<f64> {
    if n == 0 || values.len() < n {
        return Vec::new();
    }
    let mut prev = values[..n].iter().sum::<f64>() / n as f64;
    let mut out = Vec::with_capacity(values.len() - n + 1);
    out.push(prev);
    for v in &values[n..] {
        prev = (prev * (n as f64 - 1.0) + v) / n as f64;
        out.push(prev);
    }
    out
}

/// Relative strength index over `n` periods of close-to-close changes, Wilder-smoothed:
/// `100 * avg_gain / (avg_gain + avg_loss)`. Lookback `n` (it needs `n` changes).
///
/// One deliberate difference from TA-Lib: a series that does not move at all
/// (`avg_gain + avg_loss == 0`) is 50, neutral, where TA-Lib writes 0 (which would read as
/// "deeply oversold"). Every other value is TA-Lib's.
pub fn rsi(closes: &[f64], n: usize) -> Vec<f64> {
    if n == 0 || closes.len() < n + 1 {
        return Vec::new();
    }
    let changes: Vec<f64> = closes.windows(2).map(|w| w[1] - w[0]).collect();
    let gains: Vec<f64> = changes.iter().map(|d| d.max(0.0)).collect();
    let losses: Vec<f64> = changes.iter().map(|d| (-d).max(0.0)).collect();
    wilder(&gains, n)
        .into_iter()
        .zip(wilder(&losses, n))
        .map(|(g, l)| {
            if g + l == 0.0 {
                50.0
            } else {
                (100.0 * g / (g + l)).clamp(0.0, 100.0)
            }
        })
        .collect()
}

/// True range of each bar after the first: the largest of high − low, |high − previous
/// close| and |low − previous close|. Lookback 1.
pub fn true_range(high: &[f64], low: &[f64], close: &[f64]) -> Vec<f64> {
    let len = high.len().min(low.len()).min(close.len());
    (1..len)
        .map(|i| {
            let prev = close[i - 1];
            (high[i] - low[i])
                .max((high[i] - prev).abs())
                .max((low[i] - prev).abs())
        })
        .collect()
}

/// Average true range: Wilder's smoothing of the true range, seeded with the mean of the
/// first `n` true ranges. Lookback `n`.
pub fn atr(high: &[f64], low: &[f64], close: &[f64], n: usize) -> Vec<f64> {
    wilder(&true_range(high, low, close), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsi_by_hand() {
        // n = 2. Changes +2, -1, +3. First averages: gain (2+0)/2 = 1, loss (0+1)/2 = 0.5
        // -> 100 * 1 / 1.5. Then gain (1*1 + 3)/2 = 2, loss (0.5*1 + 0)/2 = 0.25 -> 100*2/2.25.
        let out = rsi(&[10.0, 12.0, 11.0, 14.0], 2);
        assert_eq!(out.len(), 2);
        assert!((out[0] - 200.0 / 3.0).abs() < 1e-12);
        assert!((out[1] - 800.0 / 9.0).abs() < 1e-12);
        assert_eq!(rsi(&[5.0; 20], 14), vec![50.0; 6]);
        assert!(rsi(&[1.0, 2.0], 2).is_empty());
    }

    #[test]
    fn atr_by_hand() {
        let (h, l, c) = (
            [10.0, 12.0, 13.0, 12.0],
            [8.0, 9.0, 11.0, 7.0],
            [9.0, 11.0, 12.0, 8.0],
        );
        // TR: max(3, 3, 0) = 3; max(2, 2, 0) = 2; max(5, 0, 5) = 5
        assert_eq!(true_range(&h, &l, &c), vec![3.0, 2.0, 5.0]);
        // n = 2: seed (3+2)/2 = 2.5, then (2.5*1 + 5)/2 = 3.75
        assert_eq!(atr(&h, &l, &c, 2), vec![2.5, 3.75]);
    }
}
