//! The input of runs, parsed once at the edge: the blocks of a new run, a worker's name, a
//! claim's lease, and the size limits of what is stored.

use std::time::Duration;

use crate::error::AppError;

/// Most blocks one run may hold.
pub const MAX_BLOCKS: usize = 10_000;
/// Most characters one block's text may hold.
pub const MAX_BLOCK_CHARS: usize = 100_000;
/// Most characters of a block's result.
pub const MAX_RESULT_CHARS: usize = 1_000_000;
/// Most characters of a failure message.
pub const MAX_ERROR_CHARS: usize = 2_000;
/// The lease a claim gets when the worker names none, and the bounds of the one it may name.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(300);
pub const MIN_LEASE_SECS: i64 = 1;
pub const MAX_LEASE_SECS: i64 = 3_600;

/// The texts of a new run's blocks, numbered by `block_index` from 0: 1 to [`MAX_BLOCKS`]
/// blocks, none empty, none longer than [`MAX_BLOCK_CHARS`]; with, for a run made from
/// uploaded files, each block's file index and position in that file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBlocks {
    texts: Vec<String>,
    /// Empty for pasted text; else one (file index, position) per block.
    sources: Vec<(i64, i64)>,
}

impl NewBlocks {
    /// `field` is how the caller names the input in errors (`blocks`, `text`, `--blocks`).
    pub fn parse(field: &str, texts: Vec<String>) -> Result<NewBlocks, AppError> {
        if texts.is_empty() {
            return Err(AppError::invalid(field, "needs at least one block of text"));
        }
        if texts.len() > MAX_BLOCKS {
            return Err(AppError::invalid(
                field,
                format!("holds {} blocks; at most {MAX_BLOCKS} are allowed", texts.len()),
            ));
        }
        for (i, t) in texts.iter().enumerate() {
            if t.trim().is_empty() {
                return Err(AppError::invalid(&format!("{field}[{i}]"), "is empty"));
            }
            if t.contains('\0') {
                return Err(AppError::invalid(
                    &format!("{field}[{i}]"),
                    "contains a NUL character, which cannot be stored",
                ));
            }
            let n = t.chars().count();
            if n > MAX_BLOCK_CHARS {
                return Err(AppError::invalid(
                    &format!("{field}[{i}]"),
                    format!("has {n} characters; at most {MAX_BLOCK_CHARS} are allowed"),
                ));
            }
        }
        Ok(NewBlocks { texts, sources: Vec::new() })
    }

    /// The blocks of extracted files, in file order and then in each file's order.
    pub fn from_files(files: &[super::upload::FileBlocks]) -> Result<NewBlocks, AppError> {
        let mut texts = Vec::new();
        let mut sources = Vec::new();
        for (i, f) in files.iter().enumerate() {
            for (position, text) in &f.blocks {
                texts.push(text.clone());
                sources.push((i as i64, *position));
            }
        }
        let NewBlocks { texts, .. } = NewBlocks::parse("files", texts)?;
        Ok(NewBlocks { texts, sources })
    }

    /// One block per paragraph of pasted text.
    pub fn from_paragraphs(field: &str, text: &str) -> Result<NewBlocks, AppError> {
        NewBlocks::parse(field, super::snapshot::paragraphs(text))
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    pub fn texts(&self) -> &[String] {
        &self.texts
    }

    /// Block `i`'s file index and position in it, for blocks extracted from files.
    pub fn source(&self, i: usize) -> Option<(i64, i64)> {
        self.sources.get(i).copied()
    }
}

/// A worker's name as it appears in `claimed_by`: 1 to 64 of `A-Z a-z 0-9 . _ - : @`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerName(String);

impl WorkerName {
    pub fn parse(raw: &str) -> Result<WorkerName, AppError> {
        let ok = (1..=64).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'@'));
        if ok {
            Ok(WorkerName(raw.to_string()))
        } else {
            Err(AppError::invalid("worker", "must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-', ':' or '@'"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How long a claim holds its blocks before another worker may take them.
pub fn parse_lease(seconds: Option<i64>) -> Result<Duration, AppError> {
    match seconds {
        None => Ok(DEFAULT_LEASE),
        Some(s) if (MIN_LEASE_SECS..=MAX_LEASE_SECS).contains(&s) => Ok(Duration::from_secs(s as u64)),
        Some(s) => Err(AppError::invalid(
            "lease_seconds",
            format!("must be an integer from {MIN_LEASE_SECS} to {MAX_LEASE_SECS}, got {s}"),
        )),
    }
}

/// A worker's report text (a result or an error message): no NUL, at most `max` characters.
pub fn check_text(field: &str, text: &str, max: usize) -> Result<(), AppError> {
    if text.contains('\0') {
        return Err(AppError::invalid(field, "contains a NUL character, which cannot be stored"));
    }
    let n = text.chars().count();
    if n > max {
        return Err(AppError::invalid(field, format!("has {n} characters; at most {max} are allowed")));
    }
    Ok(())
}
