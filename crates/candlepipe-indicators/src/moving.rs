//! Simple and exponential moving averages.

/// Simple moving average over `n` values. Lookback `n - 1`.
pub fn sma(values: &[f64], n: usize) -> Vec<f64> {
    if n == 0 || values.len() < n {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(values.len() - n + 1);
    let mut sum: f64 = values[..n].iter().sum();
    out.push(sum / n as f64);
    for i in n..values.len() {
        sum += values[i] - values[i - n];
        out.push(sum / n as f64);
    }
    out
}

/// Exponential moving average with `k = 2 / (n + 1)`, seeded with the SMA of the first `n`
/// values (TA-Lib's default). Lookback `n - 1`.
pub fn ema(values: &[f64], n: usize) -> Vec<f64> {
    if n == 0 || values.len() < n {
        return Vec::new();
    }
    let k = 2.0 / (n as f64 + 1.0);
    let mut prev = values[..n].iter().sum::<f64>() / n as f64;
    let mut out = Vec::with_capacity(values.len() - n + 1);
    out.push(prev);
    for v in &values[n..] {
        prev = (v - prev) * k + prev;
        out.push(prev);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_hand() {
        assert_eq!(sma(&[1.0, 2.0, 3.0, 4.0, 5.0], 3), vec![2.0, 3.0, 4.0]);
        // k = 0.5; seed (1+2+3)/3 = 2; then 2 + (4-2)/2 = 3; 3 + (8-3)/2 = 5.5
        assert_eq!(ema(&[1.0, 2.0, 3.0, 4.0, 8.0], 3), vec![2.0, 3.0, 5.5]);
        assert!(sma(&[1.0], 2).is_empty());
        assert!(ema(&[], 1).is_empty());
        assert!(ema(&[1.0, 2.0], 0).is_empty());
    }
}
