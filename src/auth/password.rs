//! Passwords: the new-password rule, the stored hash, and the hashing queue that keeps argon2
//! off the async threads, at most [`HASH_RUNNING`] at once with a bounded queue.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use argon2::password_hash::{PasswordHash as PhcHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use tokio::sync::Semaphore;

use crate::error::AppError;

/// Shortest password accepted by `user create`.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted anywhere; hashing a megabyte per request would be a cheap attack.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Hashes computed at once (each argon2id hash takes about 19 MiB and one core).
pub const HASH_RUNNING: usize = 2;
/// Sign-ins waiting for a hashing slot; one more is answered 429.
pub const HASH_QUEUE: usize = 16;

/// A new password that meets the length rules. Never printed.
#[derive(Clone)]
pub struct NewPassword(String);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(<redacted>)")
    }
}

impl NewPassword {
    pub fn parse(raw: &str) -> Result<NewPassword, AppError> {
        if raw.chars().count() < MIN_PASSWORD_CHARS {
            return Err(AppError::invalid(
                "password",
                format!("must be at least {MIN_PASSWORD_CHARS} characters long"),
            ));
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(AppError::invalid("password", format!("must be at most {MAX_PASSWORD_BYTES} bytes long")));
        }
        Ok(NewPassword(raw.to_string()))
    }
}

/// A stored argon2id hash in PHC form. Deliberately not `Serialize`, and its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

impl PasswordHash {
    /// A hash as read from the users table.
    pub fn stored(phc: String) -> PasswordHash {
        PasswordHash(phc)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Runs argon2 work on the blocking pool with a fixed number of slots and a bounded queue, so a
/// sign-in flood gets quick 429s instead of an unbounded backlog that starves other requests.
#[derive(Clone)]
pub struct Hasher {
    inner: Arc<HasherInner>,
}

struct HasherInner {
    running: Arc<Semaphore>,
    admitted: AtomicUsize,
    capacity: usize,
    /// Verified for unknown emails, so an answer takes as long whether or not the account exists.
    dummy: String,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher").field("in_flight", &self.in_flight()).field("capacity", &self.inner.capacity).finish()
    }
}

/// Counts one admitted job until dropped, wherever the job is when that happens.
struct Admission(Arc<HasherInner>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher::new(HASH_RUNNING, HASH_QUEUE)
    }
}

impl Hasher {
    /// `running` hashes at once, `queue` more waiting; computes the dummy hash (blocking, once).
    pub fn new(running: usize, queue: usize) -> Hasher {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let dummy = hash_blocking(&hex::encode(secret)).unwrap_or_default();
        Hasher {
            inner: Arc::new(HasherInner {
                running: Arc::new(Semaphore::new(running)),
                admitted: AtomicUsize::new(0),
                capacity: running + queue,
                dummy,
            }),
        }
    }

    /// Jobs running or waiting.
    pub fn in_flight(&self) -> usize {
        self.inner.admitted.load(Ordering::SeqCst)
    }

    /// True when the next job would be refused.
    pub fn is_full(&self) -> bool {
        self.in_flight() >= self.inner.capacity
    }

    /// Runs `job` on the blocking pool once a slot is free; 429 at once if the queue is full.
    pub async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T, AppError> {
        let before = self.inner.admitted.fetch_add(1, Ordering::SeqCst);
        let admission = Admission(self.inner.clone());
        if before >= self.inner.capacity {
            return Err(AppError::busy());
        }
        let permit = self.inner.running.clone().acquire_owned().await.map_err(|_| AppError::internal())?;
        tokio::task::spawn_blocking(move || {
            // Both are held until the work is done, even if the caller has gone away.
            let _held = (permit, admission);
            job()
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "password hashing task failed");
            AppError::internal()
        })
    }

    pub async fn hash(&self, password: NewPassword) -> Result<PasswordHash, AppError> {
        let phc = self.run(move || hash_blocking(&password.0)).await?.map_err(|e| {
            tracing::error!(error = %e, "argon2 hashing failed");
            AppError::internal()
        })?;
        Ok(PasswordHash(phc))
    }

    /// Verifies `password` against `hash`, or against the dummy hash when there is none.
    pub async fn verify(&self, password: String, hash: Option<PasswordHash>) -> Result<bool, AppError> {
        let inner = self.inner.clone();
        self.run(move || {
            let ok = verify_blocking(&password, hash.as_ref().map(|h| h.0.as_str()).unwrap_or(&inner.dummy));
            ok && hash.is_some()
        })
        .await
    }
}

fn hash_blocking(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    // Argon2::default() is argon2id, version 0x13, with the OWASP parameters (19 MiB, t=2, p=1).
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
}

fn verify_blocking(password: &str, phc: &str) -> bool {
    match PhcHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_passwords_follow_the_length_rules_and_never_print() {
        assert!(NewPassword::parse("short").is_err());
        assert!(NewPassword::parse("twelve chars").is_ok());
        assert!(!format!("{:?}", NewPassword::parse("twelve chars").unwrap()).contains("twelve"));
        assert!(NewPassword::parse(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }
}
