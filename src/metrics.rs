//! Statistics over counts: Wilson intervals for proportions and McNemar's exact test for paired
//! outcomes. What counts as correct is decided in `scoring`; this module only sees the counts.

use serde::Serialize;

/// Two-sided 95% standard normal quantile.
pub const Z95: f64 = 1.959963984540054;

/// A proportion with its Wilson score interval (95% unless stated).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Proportion {
    pub successes: u64,
    pub trials: u64,
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

/// Wilson score interval at confidence `z`. `trials == 0` gives estimate NaN and the interval [0, 1].
///
/// Panics if `successes > trials`.
pub fn wilson(successes: u64, trials: u64, z: f64) -> Proportion {
    assert!(successes <= trials, "wilson: {successes} successes out of {trials} trials");
    if trials == 0 {
        return Proportion { successes, trials, estimate: f64::NAN, low: 0.0, high: 1.0 };
    }
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At 0/n and n/n the bound is exactly 0 (or 1) analytically; rounding would leave ~1e-17 instead.
    let low = if successes == 0 { 0.0 } else { (centre - half).max(0.0) };
    let high = if successes == trials { 1.0 } else { (centre + half).min(1.0) };
    Proportion { successes, trials, estimate: p, low, high }
}

/// McNemar's exact test on paired outcomes of two protocols over the same images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct McNemar {
    pub only_a_correct: u64,
    pub only_b_correct: u64,
    pub p_value: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("paired test needs the same images: {a} outcomes vs {b}")]
    LengthMismatch { a: usize, b: usize },
}

/// Exact two-sided binomial test on the discordant pairs: b = only A correct, c = only B correct, n = b + c,
/// p = min(1, 2 * P[X <= min(b, c)]) with X ~ Binomial(n, 1/2); n == 0 gives p = 1.
pub fn mcnemar_exact(a_correct: &[bool], b_correct: &[bool]) -> Result<McNemar, MetricsError> {
    if a_correct.len() != b_correct.len() {
        return Err(MetricsError::LengthMismatch { a: a_correct.len(), b: b_correct.len() });
    }
    let (mut only_a, mut only_b) = (0u64, 0u64);
    for (&a, &b) in a_correct.iter().zip(b_correct) {
        match (a, b) {
            (true, false) => only_a += 1,
            (false, true) => only_b += 1,
            _ => {}
        }
    }
    let n = only_a + only_b;
    let p_value = if n == 0 { 1.0 } else { (2.0 * ln_binom_half_cdf(only_a.min(only_b), n).exp()).min(1.0) };
    Ok(McNemar { only_a_correct: only_a, only_b_correct: only_b, p_value })
}

/// ln P[X <= k] for X ~ Binomial(n, 1/2), for k <= n / 2.
///
/// For k <= n/2 the pmf rises up to k, so the tail is pmf(k) times a sum of ratios that are all <= 1:
/// pmf(i-1) / pmf(i) = i / (n - i + 1). Working relative to pmf(k) keeps everything in range even when
/// pmf(k) itself underflows f64 (n = 50,000 gives values far below 1e-308).
fn ln_binom_half_cdf(k: u64, n: u64) -> f64 {
    debug_assert!(2 * k <= n);
    // ln C(n, k) = sum_{j=1..k} ln((n - k + j) / j); exact enough for n up to a few 100k, no lgamma needed.
    let ln_choose: f64 = (1..=k).map(|j| ((n - k + j) as f64 / j as f64).ln()).sum();
    let ln_pmf_k = ln_choose - n as f64 * std::f64::consts::LN_2;
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for i in (1..=k).rev() {
        term *= i as f64 / (n - i + 1) as f64;
        sum += term;
        // Terms shrink monotonically, so once one no longer moves the sum, none will.
        if term < sum * f64::EPSILON * 1e-3 {
            break;
        }
    }
    ln_pmf_k + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(got: f64, want: f64, rel: f64, abs: f64, what: &str) {
        let tol = abs.max(rel * want.abs());
        assert!((got - want).abs() <= tol, "{what}: got {got:e}, want {want:e} (tol {tol:e})");
    }

    /// (successes, trials, low, high) from statsmodels 0.15.0
    /// `proportion_confint(count, nobs, alpha=0.05, method="wilson")`, printed by fixtures/generate_metrics.py.
    const WILSON_REF: [(u64, u64, f64, f64); 6] = [
        (0, 10, 0.0, 0.27753279986288926),
        (10, 10, 0.7224672001371106, 1.0),
        (12347, 50000, 0.24317969449107102, 0.2507391873044392),
        (1, 1, 0.2065493143772374, 1.0),
        (3, 7, 0.15821985525146964, 0.7495416354723428),
        (1, 50000, 3.530499822832091e-06, 0.00011328970139120266),
    ];

    /// (b, c, p) from scipy 1.17.1 `binomtest(b, b + c, 0.5, alternative="two-sided").pvalue`, printed by
    /// fixtures/generate_metrics.py. The script also asserts that, p being 1/2 (a symmetric distribution),
    /// scipy's two-sided p equals min(1, 2 * P[X <= min(b, c)]), the definition implemented here.
    const MCNEMAR_REF: [(u64, u64, f64); 11] = [
        (0, 0, 1.0),
        (1, 0, 1.0),
        (5, 7, 0.7744140625),
        (10, 30, 0.0022214337732293643),
        (430, 520, 0.0038597074976553887),
        (2000, 2150, 0.020715456049267052),
        (11800, 12100, 0.05310222274667987),
        (0, 40, 1.8189894035458565e-12),
        (25000, 25000, 1.0),
        (100, 1000, 2.3274498138260934e-187),
        (24000, 26000, 3.857469951030655e-19),
    ];

    /// Paired outcomes with exactly `b` only-A-correct and `c` only-B-correct images, padded with
    /// concordant pairs (both right, both wrong) that the test must ignore.
    fn paired(b: u64, c: u64) -> (Vec<bool>, Vec<bool>) {
        let mut a = Vec::new();
        let mut bb = Vec::new();
        a.extend(std::iter::repeat_n(true, b as usize));
        bb.extend(std::iter::repeat_n(false, b as usize));
        a.extend(std::iter::repeat_n(false, c as usize));
        bb.extend(std::iter::repeat_n(true, c as usize));
        a.extend([true, true, false, true, false]);
        bb.extend([true, true, false, true, false]);
        (a, bb)
    }

    #[test]
    fn wilson_matches_statsmodels() {
        for (s, n, low, high) in WILSON_REF {
            let p = wilson(s, n, Z95);
            let what = format!("{s}/{n}");
            assert_eq!((p.successes, p.trials), (s, n));
            assert_close(p.estimate, s as f64 / n as f64, 0.0, 1e-15, &what);
            assert_close(p.low, low, 0.0, 1e-9, &format!("{what} low"));
            assert_close(p.high, high, 0.0, 1e-9, &format!("{what} high"));
        }
    }

    #[test]
    fn wilson_no_trials_is_uninformative() {
        let p = wilson(0, 0, Z95);
        assert!(p.estimate.is_nan());
        assert_eq!((p.low, p.high), (0.0, 1.0));
    }

    #[test]
    fn wilson_narrows_with_smaller_z() {
        let wide = wilson(30, 100, Z95);
        let narrow = wilson(30, 100, 1.0);
        assert!(narrow.low > wide.low && narrow.high < wide.high);
        assert!(narrow.low < 0.3 && narrow.high > 0.3);
    }

    #[test]
    #[should_panic(expected = "successes out of")]
    fn wilson_rejects_more_successes_than_trials() {
        wilson(3, 2, Z95);
    }

    #[test]
    fn mcnemar_matches_scipy_binomtest() {
        for (b, c, want) in MCNEMAR_REF {
            // Both orders: the test is two-sided, so swapping the protocols must not change p.
            for (x, y) in [(b, c), (c, b)] {
                let (a_correct, b_correct) = paired(x, y);
                let m = mcnemar_exact(&a_correct, &b_correct).unwrap();
                assert_eq!((m.only_a_correct, m.only_b_correct), (x, y));
                // Purely relative: an absolute 1e-12 floor would let any tiny p (down to 1e-187) pass.
                assert_close(m.p_value, want, 1e-6, 0.0, &format!("b={x} c={y}"));
            }
        }
    }

    #[test]
    fn mcnemar_rejects_unpaired_inputs() {
        let err = mcnemar_exact(&[true, false, true], &[true, false]).unwrap_err();
        assert!(matches!(err, MetricsError::LengthMismatch { a: 3, b: 2 }));
        assert_eq!(err.to_string(), "paired test needs the same images: 3 outcomes vs 2");
    }
}
