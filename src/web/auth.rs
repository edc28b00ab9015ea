//! Pairing and sessions, sans IO: the time is passed in, random bytes are
//! passed in, nothing here reads a clock or a socket.
//!
//! - [`Limiter`]: wrong pairing codes are counted over a sliding minute; after
//!   [`FREE_TRIES`] wrong codes in that minute every further try is throttled
//!   (refused without looking at the code) until the oldest one leaves the
//!   window. It counts for the whole box, not per address: on a LAN an
//!   attacker picks any address, and a farmer locked out for under a minute
//!   is the lesser harm.
//! - [`Sessions`]: the phones logged in, each with its own CSRF token. A new
//!   code logs every phone out ([`Sessions::clear`]).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Wrong codes answered normally within one window; the next is throttled.
pub const FREE_TRIES: usize = 4;
pub const WINDOW: Duration = Duration::from_secs(60);
/// A phone stays logged in this long after its last request.
pub const IDLE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Phones remembered at once; the one idle longest goes first.
pub const MAX_SESSIONS: usize = 16;

#[derive(Debug, Default)]
pub struct Limiter {
    failures: VecDeque<Instant>,
}

impl Limiter {
    /// `Err(wait)` when a try now is throttled.
    pub fn check(&mut self, now: Instant) -> Result<(), Duration> {
        while self
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            self.failures.pop_front();
        }
        if self.failures.len() >= FREE_TRIES {
            let oldest = self.failures[0];
            return Err((oldest + WINDOW).saturating_duration_since(now));
        }
        Ok(())
    }

    pub fn failed(&mut self, now: Instant) {
        self.failures.push_back(now);
    }
}

/// Compares without an early exit, so the time taken says nothing about how
/// much of the code was right.
pub fn same_code(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    last_seen: Instant,
}

#[derive(Debug, Default)]
pub struct Sessions {
    by_token: HashMap<String, Session>,
}

/// Hex of 32 random bytes: a session token or a CSRF token.
pub fn token(random: [u8; 32]) -> String {
    random.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// A new session; returns its (cookie token, CSRF token).
    pub fn open(&mut self, now: Instant, random: [u8; 32], csrf: [u8; 32]) -> (String, String) {
        self.expire(now);
        while self.by_token.len() >= MAX_SESSIONS {
            let Some(oldest) = self
                .by_token
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(t, _)| t.clone())
            else {
                break;
            };
            self.by_token.remove(&oldest);
        }
        let (t, c) = (token(random), token(csrf));
        self.by_token.insert(
            t.clone(),
            Session {
                csrf: c.clone(),
                last_seen: now,
            },
        );
        (t, c)
    }

    /// The session of this cookie token, if it is live; marks it seen.
    pub fn touch(&mut self, now: Instant, token: &str) -> Option<Session> {
        self.expire(now);
        let s = self.by_token.get_mut(token)?;
        s.last_seen = now;
        Some(s.clone())
    }

    pub fn close(&mut self, token: &str) {
        self.by_token.remove(token);
    }

    /// Every phone logged out (the pairing code changed).
    pub fn clear(&mut self) {
        self.by_token.clear();
    }

    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        self.by_token
            .retain(|_, s| now.saturating_duration_since(s.last_seen) < IDLE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifth_wrong_code_in_a_minute_is_throttled() {
        let t0 = Instant::now();
        let mut l = Limiter::default();
        for i in 0..4 {
            let now = t0 + Duration::from_secs(i);
            assert!(l.check(now).is_ok(), "try {i}");
            l.failed(now);
        }
        let wait = l.check(t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        // The window slides: once the first failure is a minute old, one try is free.
        assert!(l.check(t0 + Duration::from_secs(60)).is_ok());
        l.failed(t0 + Duration::from_secs(60));
        assert!(l.check(t0 + Duration::from_secs(60)).is_err());
        assert!(l.check(t0 + Duration::from_secs(200)).is_ok());
    }

    #[test]
    fn codes_compare_whole() {
        assert!(same_code("123456", "123456"));
        assert!(!same_code("12345", "123456"));
        assert!(!same_code("1234567", "123456"));
        assert!(!same_code("", "123456"));
        assert!(!same_code("123457", "123456"));
    }

    #[test]
    fn sessions_expire_are_bounded_and_clear() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        let (tok, csrf) = s.open(t0, [1; 32], [2; 32]);
        assert_eq!(tok.len(), 64);
        assert_ne!(tok, csrf);
        assert_eq!(s.touch(t0, &tok).unwrap().csrf, csrf);
        assert!(s.touch(t0, "nope").is_none());
        assert!(s.touch(t0 + IDLE, &tok).is_none(), "idle too long");
        for i in 0..40u8 {
            s.open(t0 + Duration::from_secs(u64::from(i)), [i; 32], [i; 32]);
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        // The newest survives, the oldest went.
        assert!(s
            .touch(t0 + Duration::from_secs(40), &token([39; 32]))
            .is_some());
        assert!(s
            .touch(t0 + Duration::from_secs(40), &token([0; 32]))
            .is_none());
        s.clear();
        assert!(s.is_empty());
    }
}
