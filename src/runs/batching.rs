//! Packing a claim's blocks into batches, one model call each, when the run's snapshot enables
//! `worker.batching.enabled`. Each result still maps to its own `(run_id, block_uid)`.
//!
//! The estimate: one token per 4 characters of a block's text, rounded up. The budget of one
//! batch: `models.platform_default_max_tokens × (1 − worker.batching.safety_margin)`, rounded
//! down. Blocks are packed in claim order; a batch takes the next block while the sum of the
//! estimates stays within the budget, and a block larger than the budget is a batch of its own.

use std::ops::Range;

/// Characters per estimated token.
pub const CHARS_PER_TOKEN: i64 = 4;

/// The estimated tokens of a text (at least 1).
pub fn estimate_tokens(text: &str) -> i64 {
    let chars = text.chars().count() as i64;
    ((chars + CHARS_PER_TOKEN - 1) / CHARS_PER_TOKEN).max(1)
}

/// The tokens one batch may hold: `max_tokens × (1 − margin)`, the margin in hundredths.
pub fn budget(max_tokens: i64, margin_hundredths: i64) -> i64 {
    (max_tokens.max(1) * (100 - margin_hundredths.clamp(0, 99)) / 100).max(1)
}

/// Splits blocks of these estimated sizes, in order, into consecutive batches within `budget`.
pub fn pack(sizes: &[i64], budget: i64) -> Vec<Range<usize>> {
    let mut batches = Vec::new();
    let mut start = 0;
    let mut sum = 0;
    for (i, size) in sizes.iter().enumerate() {
        if i > start && sum + size > budget {
            batches.push(start..i);
            start = i;
            sum = 0;
        }
        sum += size;
    }
    if start < sizes.len() {
        batches.push(start..sizes.len());
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_is_characters_over_four_rounded_up() {
        assert_eq!(estimate_tokens(""), 1);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        assert_eq!(estimate_tokens(&"é".repeat(8)), 2);
    }

    #[test]
    fn the_budget_holds_back_the_margin() {
        assert_eq!(budget(4096, 20), 3276);
        assert_eq!(budget(100, 50), 50);
        assert_eq!(budget(1, 99), 1);
    }

    #[test]
    fn blocks_are_packed_in_order_and_a_large_one_goes_alone() {
        assert_eq!(pack(&[3, 3, 3, 3], 6), vec![0..2, 2..4]);
        assert_eq!(pack(&[2, 10, 2, 2], 6), vec![0..1, 1..2, 2..4]);
        assert_eq!(pack(&[10], 6), vec![0..1]);
        assert_eq!(pack(&[], 6), Vec::<Range<usize>>::new());
        // Every block lands in exactly one batch, in order, and no batch of two or more is over.
        let sizes: Vec<i64> = (0..200).map(|i| (i * 37 % 11) + 1).collect();
        let batches = pack(&sizes, 15);
        assert_eq!(batches.iter().map(|r| r.len()).sum::<usize>(), sizes.len());
        assert!(batches.windows(2).all(|w| w[0].end == w[1].start));
        assert!(batches.iter().all(|r| r.len() == 1 || sizes[r.clone()].iter().sum::<i64>() <= 15));
    }
}
