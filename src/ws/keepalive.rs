//! [`Keepalive`]: when an open websocket is due a ping from the server
//! (`--ws-ping-interval`), and when a client that has not answered one with
//! a pong is given up on (`--ws-ping-timeout`).
//!
//! Only the schedule lives here, with the time passed in, so it is tested
//! without a clock; the frame task sends the pings and closes the
//! connection.

use std::time::Duration;

use tokio::time::Instant;

/// What the frame task has to do when the keep-alive timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    Ping,
    /// A ping went unanswered for the whole timeout: the client is gone.
    TimedOut,
    /// The timer was set for a pong deadline that a pong has since met.
    Nothing,
}

#[derive(Debug)]
pub(crate) struct Keepalive {
    interval: Duration,
    /// `None`: pings are sent, but an unanswered one closes nothing.
    timeout: Option<Duration>,
    next_ping: Instant,
    /// Set by the first ping a pong has not answered yet; later pings do
    /// not move it, so a client that never answers is closed in time.
    pong_due: Option<Instant>,
}

impl Keepalive {
    /// `None` when pings are off (no interval).
    pub(crate) fn new(
        interval: Option<Duration>,
        timeout: Option<Duration>,
        now: Instant,
    ) -> Option<Self> {
        let interval = interval?;
        Some(Self {
            interval,
            timeout,
            next_ping: now + interval,
            pong_due: None,
        })
    }

    /// When the timer should fire next.
    pub(crate) fn next_wake(&self) -> Instant {
        match self.pong_due {
            Some(due) => due.min(self.next_ping),
            None => self.next_ping,
        }
    }

    /// The timer fired at `now`.
    pub(crate) fn tick(&mut self, now: Instant) -> Due {
        if self.pong_due.is_some_and(|due| now >= due) {
            return Due::TimedOut;
        }
        if now < self.next_ping {
            return Due::Nothing;
        }
        // From now, not from the missed time: a late timer (the task was
        // busy writing) must not send a burst of pings.
        self.next_ping = now + self.interval;
        if let Some(timeout) = self.timeout {
            self.pong_due.get_or_insert(now + timeout);
        }
        Due::Ping
    }

    /// Any pong counts, even one for an earlier ping or an unsolicited one:
    /// it shows the client is there and reading.
    pub(crate) fn pong(&mut self) {
        self.pong_due = None;
    }

    /// The server reads the socket again at `now`, after the app fell
    /// behind. The client gets the whole timeout from here: its pong may
    /// have sat unread, or it may not even have been able to send it while
    /// its own writes were held up.
    pub(crate) fn reading_again(&mut self, now: Instant) {
        if let (Some(due), Some(timeout)) = (self.pong_due.as_mut(), self.timeout) {
            *due = (*due).max(now + timeout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn no_interval_means_no_pings() {
        assert!(Keepalive::new(None, Some(SECOND), Instant::now()).is_none());
    }

    #[test]
    fn pings_every_interval_while_pongs_come_back() {
        let start = Instant::now();
        let mut keepalive = Keepalive::new(Some(2 * SECOND), Some(SECOND), start).unwrap();
        assert_eq!(keepalive.next_wake(), start + 2 * SECOND);
        assert_eq!(keepalive.tick(start + SECOND), Due::Nothing);
        assert_eq!(keepalive.tick(start + 2 * SECOND), Due::Ping);
        // Waiting for the pong: the deadline comes before the next ping.
        assert_eq!(keepalive.next_wake(), start + 3 * SECOND);
        keepalive.pong();
        assert_eq!(keepalive.next_wake(), start + 4 * SECOND);
        assert_eq!(keepalive.tick(start + 4 * SECOND), Due::Ping);
    }

    #[test]
    fn an_unanswered_ping_times_out_from_when_it_was_sent() {
        let start = Instant::now();
        // A timeout longer than the interval: more pings go out meanwhile.
        let mut keepalive = Keepalive::new(Some(SECOND), Some(3 * SECOND), start).unwrap();
        assert_eq!(keepalive.tick(start + SECOND), Due::Ping);
        assert_eq!(keepalive.tick(start + 2 * SECOND), Due::Ping);
        assert_eq!(keepalive.tick(start + 3 * SECOND), Due::Ping);
        assert_eq!(keepalive.next_wake(), start + 4 * SECOND);
        assert_eq!(keepalive.tick(start + 4 * SECOND), Due::TimedOut);
    }

    #[test]
    fn a_pause_in_reading_gives_the_client_the_whole_timeout_again() {
        let start = Instant::now();
        let mut keepalive = Keepalive::new(Some(SECOND), Some(SECOND), start).unwrap();
        keepalive.reading_again(start);
        assert_eq!(keepalive.next_wake(), start + SECOND);
        assert_eq!(keepalive.tick(start + SECOND), Due::Ping);
        keepalive.reading_again(start + 5 * SECOND);
        // Due a ping again, but not yet given up on.
        assert_eq!(keepalive.tick(start + 5 * SECOND), Due::Ping);
        assert_eq!(keepalive.next_wake(), start + 6 * SECOND);
        assert_eq!(keepalive.tick(start + 6 * SECOND), Due::TimedOut);
    }

    #[test]
    fn a_late_timer_sends_one_ping_not_a_burst() {
        let start = Instant::now();
        let mut keepalive = Keepalive::new(Some(SECOND), None, start).unwrap();
        assert_eq!(keepalive.tick(start + 10 * SECOND), Due::Ping);
        assert_eq!(keepalive.tick(start + 10 * SECOND), Due::Nothing);
        assert_eq!(keepalive.next_wake(), start + 11 * SECOND);
    }

    #[test]
    fn without_a_timeout_nothing_times_out() {
        let start = Instant::now();
        let mut keepalive = Keepalive::new(Some(SECOND), None, start).unwrap();
        for n in 1..100 {
            assert_eq!(keepalive.tick(start + n * SECOND), Due::Ping);
        }
    }
}
