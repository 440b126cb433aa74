//! Histogram bucketing.
//!
//! Values are split into [`HISTOGRAM_BUCKETS`] equal-width buckets between their minimum
//! and maximum, like TensorBoard's own `tensorboard.summary.histogram` (v2,
//! `DEFAULT_BUCKET_COUNT = 30`), and stored as a `HistogramProto`: `bucket_limit[i]` is the
//! right edge of bucket `i` (the last one is exactly the maximum) and TensorBoard takes
//! `min` as the left edge of the first bucket. When all values are equal there is a single
//! bucket `[max]` holding them all; an empty slice gives no buckets (`num = 0`).
//!
//! TensorFlow's v1 default (about 1,500 exponential buckets from ±1e-12 growing by 1.1×,
//! plus ±DBL_MAX) was not chosen: TensorBoard re-bins every histogram to 30 equal-width
//! bins for display anyway, and 30 buckets keep each event small.

use crate::proto::HistogramProto;

/// Number of equal-width buckets of [`bucketize`] as used by
/// [`EventWriter::histogram`](crate::EventWriter::histogram).
pub const HISTOGRAM_BUCKETS: usize = 30;

/// Builds the histogram of `values` with `bucket_count` equal-width buckets (at least 1).
///
/// # Errors
///
/// The index of the first NaN or infinite value (TensorBoard cannot draw those).
pub fn bucketize(values: &[f64], bucket_count: usize) -> Result<HistogramProto, usize> {
    if let Some(index) = values.iter().position(|v| !v.is_finite()) {
        return Err(index);
    }
    let Some(&first) = values.first() else {
        return Ok(HistogramProto::default());
    };
    let (mut min, mut max, mut sum, mut sum_squares) = (first, first, 0.0, 0.0);
    for &v in values {
        min = min.min(v);
        max = max.max(v);
        sum += v;
        sum_squares += v * v;
    }
    let num = values.len() as f64;
    let bucket_count = bucket_count.max(1);
    // Divided before subtracting so that a range wider than f64::MAX still works.
    let width = max / bucket_count as f64 - min / bucket_count as f64;
    let (bucket_limit, bucket) = if width > 0.0 {
        let mut counts = vec![0.0; bucket_count];
        for &v in values {
            // `as usize` saturates; the clamp puts the maximum into the last bucket.
            let index = (((v - min) / width).floor() as usize).min(bucket_count - 1);
            counts[index] += 1.0;
        }
        let mut limits: Vec<f64> = (1..bucket_count).map(|i| min + width * i as f64).collect();
        limits.push(max);
        (limits, counts)
    } else {
        // One distinct value: a single bucket.
        (vec![max], vec![num])
    };
    Ok(HistogramProto {
        min,
        max,
        num,
        sum,
        sum_squares,
        bucket_limit,
        bucket,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_width_buckets_cover_min_to_max() {
        let values: Vec<f64> = (0..=100).map(f64::from).collect();
        let h = bucketize(&values, 10).unwrap();
        assert_eq!((h.min, h.max, h.num), (0.0, 100.0, 101.0));
        assert_eq!(h.sum, 5050.0);
        assert_eq!(
            h.sum_squares,
            (0..=100).map(|v| f64::from(v * v)).sum::<f64>()
        );
        assert_eq!(h.bucket_limit.len(), 10);
        for (i, limit) in h.bucket_limit.iter().enumerate() {
            assert!((limit - 10.0 * (i + 1) as f64).abs() < 1e-9, "{i}: {limit}");
        }
        // [0,10) ... [80,90) hold 10 values each; the last bucket also holds the maximum.
        let mut expected = vec![10.0; 9];
        expected.push(11.0);
        assert_eq!(h.bucket, expected);
    }

    #[test]
    fn single_value_and_empty() {
        let h = bucketize(&[2.5, 2.5, 2.5], HISTOGRAM_BUCKETS).unwrap();
        assert_eq!((h.min, h.max, h.num), (2.5, 2.5, 3.0));
        assert_eq!((h.bucket_limit, h.bucket), (vec![2.5], vec![3.0]));
        let h = bucketize(&[], HISTOGRAM_BUCKETS).unwrap();
        assert_eq!(h.num, 0.0);
        assert!(h.bucket.is_empty() && h.bucket_limit.is_empty());
    }

    #[test]
    fn huge_range_and_non_finite() {
        let h = bucketize(&[-f64::MAX, f64::MAX], 4).unwrap();
        assert_eq!(h.bucket, vec![1.0, 0.0, 0.0, 1.0]);
        assert_eq!(*h.bucket_limit.last().unwrap(), f64::MAX);
        assert_eq!(bucketize(&[1.0, f64::NAN], 4), Err(1));
        assert_eq!(bucketize(&[f64::NEG_INFINITY], 4), Err(0));
    }
}
