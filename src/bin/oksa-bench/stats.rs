//! Medians and percentiles. Pure.

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub median_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Summary of durations in milliseconds (nearest-rank percentiles).
pub fn summarize(mut values: Vec<f64>) -> Summary {
    if values.is_empty() {
        return Summary::default();
    }
    values.sort_by(f64::total_cmp);
    let rank =
        |p: f64| values[((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
    Summary {
        count: values.len(),
        median_ms: rank(0.5),
        p99_ms: rank(0.99),
        max_ms: values[values.len() - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let summary = summarize((1..=100).map(f64::from).collect());
        assert_eq!(
            (summary.median_ms, summary.p99_ms, summary.max_ms),
            (50.0, 99.0, 100.0)
        );
        assert_eq!(summarize(vec![7.0]).p99_ms, 7.0);
        assert_eq!(summarize(vec![]).count, 0);
    }
}
