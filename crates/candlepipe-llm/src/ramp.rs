//! How the canary's traffic weight moves after each window (additive increase,
//! multiplicative decrease): with at least `min_requests` canary calls in the window,
//! a success ratio of 99.9% or more adds 10 points (up to 100); below 99% the weight halves,
//! rounded down to a multiple of 10, so a canary failing at 10% goes to 0 and stays there
//! until an operator raises it again. Between the two, or with fewer calls, it holds.

pub const STEP: u8 = 10;
pub const RAMP_UP_AT: f64 = 0.999;
pub const BACK_OFF_BELOW: f64 = 0.99;

pub fn next_weight(weight: u8, ok: u64, failed: u64, min_requests: u64) -> u8 {
    let n = ok + failed;
    if n == 0 || n < min_requests {
        return weight;
    }
    let success = ok as f64 / n as f64;
    if success >= RAMP_UP_AT {
        weight.saturating_add(STEP).min(100)
    } else if success < BACK_OFF_BELOW {
        weight / 2 / STEP * STEP
    } else {
        weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(next_weight(10, 1000, 0, 20), 20);
        assert_eq!(next_weight(10, 999, 1, 20), 20, "99.9% exactly ramps up");
        assert_eq!(next_weight(95, 50, 0, 20), 100);
        assert_eq!(next_weight(40, 995, 5, 20), 40, "99.5% holds");
        assert_eq!(next_weight(40, 98, 2, 20), 20, "98% halves");
        assert_eq!(next_weight(30, 0, 30, 20), 10);
        assert_eq!(next_weight(10, 0, 30, 20), 0, "rollback");
        assert_eq!(next_weight(10, 19, 0, 20), 10, "too few calls");
        assert_eq!(next_weight(0, 0, 0, 0), 0);
    }
}
