//! Press classification: raw edges of one button in, `Short` / `Long` presses out.
//!
//! Pure and sans-IO: the caller passes `now` with every edge, calls
//! [`PressClassifier::handle_timeout`] at [`PressClassifier::poll_timeout`], and
//! drains [`PressClassifier::poll_event`]. Contract:
//! - a level counts only once it has been stable for the debounce time, so a glitch
//!   shorter than that is invisible; the press is dated from its first stable edge;
//! - `Down` is emitted the moment a press of a two-meaning button (go-live)
//!   settles, before it is known to be short or long: in standby the show starts
//!   there, without waiting for the release (a go-live press lasts 100-300 ms,
//!   which would all be added to the time to air);
//! - `Long` is emitted the moment the hold crosses the long-press threshold (the
//!   farmer sees the show end while still holding), and that release emits nothing;
//! - `Short` is emitted on a release before the threshold.
//!
//! [`Buttons`] keeps one classifier per [`ButtonId`] for the driver.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// Which physical (or simulated) button.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ButtonId {
    GoLive,
    /// A product button, by product id.
    Product(String),
}

impl fmt::Display for ButtonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ButtonId::GoLive => f.write_str("go_live"),
            ButtonId::Product(id) => write!(f, "product:{id}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PressKind {
    /// A press settled; `Short` or `Long` follows for the same press.
    Down,
    Short,
    Long,
}

/// A classified press of one button: what the show machine consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ButtonEvent {
    pub button: ButtonId,
    pub kind: PressKind,
}

pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(30);
pub const DEFAULT_LONG_PRESS: Duration = Duration::from_millis(2000);

/// Debounce and long-press classifier for one button.
#[derive(Debug, Clone)]
pub struct PressClassifier {
    debounce: Duration,
    long_press: Duration,
    /// Last raw level seen and since when.
    raw: bool,
    raw_since: Option<Instant>,
    /// Debounced level.
    stable: bool,
    pressed_at: Option<Instant>,
    long_fired: bool,
    last_now: Option<Instant>,
    out: VecDeque<PressKind>,
    /// Fire `Short` as soon as the press is debounced (product buttons: there
    /// is no long press to tell apart, and the tag should be on air at once).
    fire_on_press: bool,
}

impl PressClassifier {
    /// A button that must tell a short press from a long one (go-live):
    /// classified on release, or when the hold crosses `long_press`.
    pub fn new(debounce: Duration, long_press: Duration) -> Self {
        PressClassifier {
            fire_on_press: false,
            debounce,
            long_press,
            raw: false,
            raw_since: None,
            stable: false,
            pressed_at: None,
            long_fired: false,
            last_now: None,
            out: VecDeque::new(),
        }
    }

    /// A button with one meaning (a product): `Short` when the press settles.
    pub fn on_press(debounce: Duration) -> Self {
        PressClassifier {
            fire_on_press: true,
            ..PressClassifier::new(debounce, Duration::MAX)
        }
    }

    /// Time never runs backwards here, even if edges arrive out of order.
    fn clamp(&mut self, now: Instant) -> Instant {
        let now = match self.last_now {
            Some(last) if last > now => last,
            _ => now,
        };
        self.last_now = Some(now);
        now
    }

    /// A raw level change (or repeat) read from the pin.
    pub fn edge(&mut self, now: Instant, pressed: bool) {
        let now = self.clamp(now);
        self.handle_timeout(now);
        if pressed != self.raw {
            self.raw = pressed;
            self.raw_since = Some(now);
        }
        self.handle_timeout(now);
    }

    /// Settles debounced levels and fires the long press, in time order.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clamp(now);
        loop {
            if let Some(since) = self.raw_since {
                if self.raw != self.stable && now >= since + self.debounce {
                    self.commit(since);
                    continue;
                }
            }
            if let Some(at) = self.pressed_at {
                // Only while the raw level is still down: a pending release decides
                // (by its own time) whether the hold reached the threshold.
                if !self.fire_on_press
                    && self.stable
                    && self.raw
                    && !self.long_fired
                    && now
                        .checked_duration_since(at)
                        .is_some_and(|held| held >= self.long_press)
                {
                    self.long_fired = true;
                    self.out.push_back(PressKind::Long);
                    continue;
                }
            }
            break;
        }
    }

    fn commit(&mut self, at: Instant) {
        self.stable = self.raw;
        if self.fire_on_press {
            if self.stable {
                self.out.push_back(PressKind::Short);
            }
            return;
        }
        if self.stable {
            self.pressed_at = Some(at);
            self.long_fired = false;
            self.out.push_back(PressKind::Down);
        } else if let Some(down) = self.pressed_at.take() {
            if !self.long_fired {
                let kind = if at >= down + self.long_press {
                    PressKind::Long
                } else {
                    PressKind::Short
                };
                self.out.push_back(kind);
            }
            self.long_fired = false;
        }
    }

    pub fn poll_event(&mut self) -> Option<PressKind> {
        self.out.pop_front()
    }

    /// When to call [`Self::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if let Some(since) = self.raw_since {
            if self.raw != self.stable {
                return Some(since + self.debounce);
            }
        }
        match self.pressed_at {
            Some(at) if self.stable && !self.long_fired && !self.fire_on_press => {
                at.checked_add(self.long_press)
            }
            _ => None,
        }
    }

    /// The debounced level.
    pub fn is_pressed(&self) -> bool {
        self.stable
    }
}

/// One classifier per button, created on the button's first edge.
#[derive(Debug, Clone)]
pub struct Buttons {
    debounce: Duration,
    long_press: Duration,
    buttons: Vec<(ButtonId, PressClassifier)>,
    out: VecDeque<ButtonEvent>,
}

impl Buttons {
    pub fn new(debounce: Duration, long_press: Duration) -> Self {
        Buttons {
            debounce,
            long_press,
            buttons: Vec::new(),
            out: VecDeque::new(),
        }
    }

    pub fn edge(&mut self, button: &ButtonId, at: Instant, pressed: bool) {
        let index = match self.buttons.iter().position(|(id, _)| id == button) {
            Some(i) => i,
            None => {
                let c = match button {
                    ButtonId::GoLive => PressClassifier::new(self.debounce, self.long_press),
                    ButtonId::Product(_) => PressClassifier::on_press(self.debounce),
                };
                self.buttons.push((button.clone(), c));
                self.buttons.len() - 1
            }
        };
        if let Some((_, c)) = self.buttons.get_mut(index) {
            c.edge(at, pressed);
        }
        self.collect();
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for (_, c) in &mut self.buttons {
            c.handle_timeout(now);
        }
        self.collect();
    }

    fn collect(&mut self) {
        for (id, c) in &mut self.buttons {
            while let Some(kind) = c.poll_event() {
                self.out.push_back(ButtonEvent {
                    button: id.clone(),
                    kind,
                });
            }
        }
    }

    pub fn poll_event(&mut self) -> Option<ButtonEvent> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.buttons
            .iter()
            .filter_map(|(_, c)| c.poll_timeout())
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_buttons_fire_when_the_press_settles() {
        let t0 = Instant::now();
        let mut b = Buttons::new(DB, Duration::from_millis(2000));
        let id = ButtonId::Product("mussels".into());
        b.edge(&id, t0, true);
        b.edge(&id, t0 + Duration::from_millis(5), false); // bounce
        b.edge(&id, t0 + Duration::from_millis(8), true);
        assert_eq!(b.poll_event(), None, "not before the debounce");
        b.handle_timeout(t0 + Duration::from_millis(40));
        assert_eq!(b.poll_event().map(|e| e.kind), Some(PressKind::Short));
        // Held for long, released: nothing more (no long press for products).
        b.handle_timeout(t0 + Duration::from_secs(5));
        b.edge(&id, t0 + Duration::from_secs(5), false);
        b.handle_timeout(t0 + Duration::from_secs(6));
        assert_eq!(b.poll_event(), None);
        assert_eq!(b.poll_timeout(), None);
    }

    const DB: Duration = Duration::from_millis(30);
    const LONG: Duration = Duration::from_millis(2000);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Feeds `(offset_ms, level)` edges, then runs timeouts up to `end_ms`, jumping
    /// to each deadline; returns each press with the time it was emitted.
    fn run(edges: &[(u64, bool)], end_ms: u64) -> Vec<(u64, PressKind)> {
        let t0 = Instant::now();
        let mut c = PressClassifier::new(DB, LONG);
        let mut out = Vec::new();
        let mut drain = |c: &mut PressClassifier, at: Instant| {
            while let Some(k) = c.poll_event() {
                out.push(((at - t0).as_millis() as u64, k));
            }
        };
        for &(t, level) in edges {
            while let Some(d) = c.poll_timeout() {
                if d > t0 + ms(t) {
                    break;
                }
                c.handle_timeout(d);
                drain(&mut c, d);
            }
            c.edge(t0 + ms(t), level);
            drain(&mut c, t0 + ms(t));
        }
        while let Some(d) = c.poll_timeout() {
            if d > t0 + ms(end_ms) {
                break;
            }
            c.handle_timeout(d);
            drain(&mut c, d);
        }
        out
    }

    #[test]
    fn clean_short_press() {
        assert_eq!(
            run(&[(0, true), (200, false)], 5000),
            vec![(30, PressKind::Down), (230, PressKind::Short)]
        );
    }

    #[test]
    fn bounce_trains_make_one_press() {
        let edges = [
            (0, true),
            (2, false),
            (4, true),
            (7, false),
            (9, true),
            (300, false),
            (301, true),
            (303, false),
        ];
        assert_eq!(
            run(&edges, 5000),
            vec![(39, PressKind::Down), (333, PressKind::Short)]
        );
    }

    #[test]
    fn glitch_shorter_than_debounce_is_invisible() {
        assert!(run(&[(0, true), (29, false)], 5000).is_empty());
        assert!(run(
            &[(100, true), (110, false), (120, true), (125, false)],
            5000
        )
        .is_empty());
    }

    #[test]
    fn long_fires_while_held_and_release_is_silent() {
        // Dated from the first edge, not from when the debounce settled.
        let out = run(&[(0, true), (5000, false)], 9000);
        assert_eq!(out, vec![(30, PressKind::Down), (2000, PressKind::Long)]);
    }

    #[test]
    fn long_fires_without_release() {
        assert_eq!(
            run(&[(0, true)], 10_000),
            vec![(30, PressKind::Down), (2000, PressKind::Long)]
        );
    }

    #[test]
    fn exact_threshold() {
        // The press is dated from its first edge (0) and settles at 30 ms.
        // Released 1 ms before the threshold: short.
        assert_eq!(
            run(&[(0, true), (1999, false)], 5000),
            vec![(30, PressKind::Down), (2029, PressKind::Short)]
        );
        // Released exactly at the threshold: the hold crossed it, long.
        let out = run(&[(0, true), (2000, false)], 5000);
        assert_eq!(out, vec![(30, PressKind::Down), (2000, PressKind::Long)]);
    }

    #[test]
    fn bounce_while_holding_does_not_lose_the_long_press() {
        // A 5 ms chatter straddling the threshold is not a release.
        let out = run(
            &[(0, true), (1998, false), (2003, true), (4000, false)],
            6000,
        );
        assert_eq!(out, vec![(30, PressKind::Down), (2003, PressKind::Long)]);
    }

    #[test]
    fn late_tick_still_classifies_by_edge_times() {
        // No timeouts processed in between: one edge far later settles everything.
        let t0 = Instant::now();
        let mut c = PressClassifier::new(DB, LONG);
        c.edge(t0, true);
        c.edge(t0 + ms(500), false);
        c.handle_timeout(t0 + ms(10_000));
        assert_eq!(c.poll_event(), Some(PressKind::Down));
        assert_eq!(c.poll_event(), Some(PressKind::Short));
        assert_eq!(c.poll_event(), None);
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn two_presses_in_a_row() {
        let out = run(&[(0, true), (100, false), (400, true), (2600, false)], 6000);
        assert_eq!(
            out,
            vec![
                (30, PressKind::Down),
                (130, PressKind::Short),
                (430, PressKind::Down),
                (2400, PressKind::Long)
            ]
        );
    }

    #[test]
    fn buttons_are_independent() {
        let t0 = Instant::now();
        let mut b = Buttons::new(DB, LONG);
        let p = ButtonId::Product("eggs".into());
        b.edge(&ButtonId::GoLive, t0, true);
        b.edge(&p, t0 + ms(10), true);
        b.edge(&p, t0 + ms(100), false);
        b.handle_timeout(t0 + ms(200));
        assert_eq!(
            b.poll_event(),
            Some(ButtonEvent {
                button: p,
                kind: PressKind::Short
            })
        );
        assert_eq!(
            b.poll_event().map(|e| (e.button, e.kind)),
            Some((ButtonId::GoLive, PressKind::Down))
        );
        assert_eq!(b.poll_timeout(), Some(t0 + ms(2000)));
        b.handle_timeout(t0 + ms(2000));
        assert_eq!(
            b.poll_event().map(|e| (e.button, e.kind)),
            Some((ButtonId::GoLive, PressKind::Long))
        );
    }
}
