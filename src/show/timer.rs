//! The machine's timers: one enum, one table of deadlines; the earliest is the
//! next wake-up (quinn-proto's `connection/timer.rs` shape).

use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Retry `StartCapture` after a capture failed.
    CaptureRetry,
    /// `RestartCapture` while the camera is lost.
    CameraRetry,
    /// End of the Ack light pattern.
    Ack,
    /// Give up waiting for destinations to stop.
    StopDeadline,
    /// Reconnect destination `n` (index into the destination list).
    Reconnect(usize),
}

const FIXED: usize = 4;

fn fixed_index(t: Timer) -> Option<usize> {
    match t {
        Timer::CaptureRetry => Some(0),
        Timer::CameraRetry => Some(1),
        Timer::Ack => Some(2),
        Timer::StopDeadline => Some(3),
        Timer::Reconnect(_) => None,
    }
}

const FIXED_TIMERS: [Timer; FIXED] = [
    Timer::CaptureRetry,
    Timer::CameraRetry,
    Timer::Ack,
    Timer::StopDeadline,
];

#[derive(Debug, Clone)]
pub struct TimerTable {
    fixed: [Option<Instant>; FIXED],
    reconnect: Vec<Option<Instant>>,
}

impl TimerTable {
    pub fn new(destinations: usize) -> Self {
        TimerTable {
            fixed: [None; FIXED],
            reconnect: vec![None; destinations],
        }
    }

    fn slot(&mut self, t: Timer) -> Option<&mut Option<Instant>> {
        match (fixed_index(t), t) {
            (Some(i), _) => self.fixed.get_mut(i),
            (None, Timer::Reconnect(n)) => self.reconnect.get_mut(n),
            (None, _) => None,
        }
    }

    pub fn set(&mut self, t: Timer, at: Instant) {
        if let Some(s) = self.slot(t) {
            *s = Some(at);
        }
    }

    pub fn stop(&mut self, t: Timer) {
        if let Some(s) = self.slot(t) {
            *s = None;
        }
    }

    pub fn get(&self, t: Timer) -> Option<Instant> {
        match (fixed_index(t), t) {
            (Some(i), _) => self.fixed.get(i).copied().flatten(),
            (None, Timer::Reconnect(n)) => self.reconnect.get(n).copied().flatten(),
            (None, _) => None,
        }
    }

    pub fn is_set(&self, t: Timer) -> bool {
        self.get(t).is_some()
    }

    pub fn stop_all(&mut self) {
        self.fixed = [None; FIXED];
        self.reconnect.iter_mut().for_each(|s| *s = None);
    }

    fn iter(&self) -> impl Iterator<Item = (Timer, Instant)> + '_ {
        let fixed = FIXED_TIMERS
            .iter()
            .zip(self.fixed.iter())
            .filter_map(|(t, at)| at.map(|at| (*t, at)));
        let reconnect = self
            .reconnect
            .iter()
            .enumerate()
            .filter_map(|(n, at)| at.map(|at| (Timer::Reconnect(n), at)));
        fixed.chain(reconnect)
    }

    /// The earliest deadline.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.iter().map(|(_, at)| at).min()
    }

    /// The earliest timer due at `now`, removed from the table.
    pub fn pop_expired(&mut self, now: Instant) -> Option<Timer> {
        let (t, _) = self
            .iter()
            .filter(|(_, at)| *at <= now)
            .min_by_key(|(_, at)| *at)?;
        self.stop(t);
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn earliest_first_and_removed_when_popped() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut table = TimerTable::new(2);
        table.set(Timer::Reconnect(1), t0 + ms(30));
        table.set(Timer::Ack, t0 + ms(10));
        table.set(Timer::StopDeadline, t0 + ms(50));
        table.set(Timer::Reconnect(9), t0); // out of range: ignored
        assert_eq!(table.next_timeout(), Some(t0 + ms(10)));
        assert_eq!(table.pop_expired(t0 + ms(40)), Some(Timer::Ack));
        assert_eq!(table.pop_expired(t0 + ms(40)), Some(Timer::Reconnect(1)));
        assert_eq!(table.pop_expired(t0 + ms(40)), None);
        assert_eq!(table.next_timeout(), Some(t0 + ms(50)));
        table.stop_all();
        assert_eq!(table.next_timeout(), None);
    }
}
