//! [`PythonPool`]: a fixed set of threads that run blocking Python work
//! (WSGI apps), each attached to the interpreter for its whole life.
//!
//! Two costs dominate handing work to threads that run Python: creating
//! a thread's interpreter state on every call, and waking threads that
//! then only fight over the GIL. So each thread keeps its state and
//! releases the GIL only while it sleeps; a thread that finishes a job
//! takes the next queued one without releasing the GIL; and more threads
//! are woken only when the ones working stop making progress because their
//! jobs block (on I/O or `sleep`): a monitor checks every [`STALL`] while
//! jobs wait, and before waking a thread it looks whether one of the
//! pool's threads is running. Threads that are computing hold the GIL, and a
//! thread woken beside them would only take turns at it (every switch a
//! handover between sleeping threads, 5 ms apart by default): an app
//! computing for a millisecond a request served 607 requests/s spread over
//! 32 threads, against 1,814/s run back to back by a few. Quick jobs are
//! thus run back to back by one thread, slow blocking jobs still spread
//! over the whole pool within milliseconds, and a job that computes for
//! longer than [`LONG_JOB`] gets company, so that short requests are not
//! stuck behind it.
//!
//! Threads start when they are first needed, up to the pool's size, and one
//! that has slept longer than the idle timeout ends (the first thread
//! stays), so a burst does not leave dozens of threads, each with its
//! interpreter state and stack, behind.

use crate::sync::{Condvar, Mutex, MutexGuard};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use super::Job;
use super::pyobj::release_deferred;
use crate::log::{self, Logger};
use crate::memory;

/// How long queued jobs may see no progress before another thread wakes.
const STALL: Duration = Duration::from_millis(1);

/// How long queued jobs wait behind threads that are computing (not
/// blocked) before another thread wakes anyway.
const LONG_JOB: Duration = Duration::from_millis(10);

/// How long the pool must have had nothing queued before the monitor stops
/// looking every [`STALL`] and sleeps until a job comes. Under load, being
/// told about every job that finds the queue empty would cost far more
/// than a check a millisecond.
const IDLE: Duration = Duration::from_millis(100);

pub(crate) struct PythonPool {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// The monitor sleeps here after [`IDLE`] with nothing queued.
    queued: Condvar,
    /// `shutdown` waits here for threads to finish.
    finished: Condvar,
}

struct State {
    queue: VecDeque<Job>,
    /// Threads waiting for work, the latest last: a job wakes the thread
    /// that went to sleep last, so under light load the same few threads
    /// work and the others reach the idle timeout. (A condition variable
    /// would wake them in turn and keep every one of them alive.)
    sleepers: Vec<Sleeper>,
    /// Names the next sleeper.
    next_sleeper: u64,
    /// Wake-ups sent but not yet taken.
    waking: usize,
    /// Threads running a job.
    running: usize,
    /// How many threads may run jobs at once: raised when the running ones
    /// are found blocked, lowered when they are found computing (more of
    /// them would only take turns at the GIL). A thread that finishes a
    /// job while as many others run goes to sleep instead of taking the
    /// next one.
    target: usize,
    /// Counts jobs started and finished (and wake-ups sent): the monitor
    /// sees a stall when it stops moving.
    progress: u64,
    /// The monitor sleeps until a job is queued.
    monitor_asleep: bool,
    /// Jobs queued or running, and threads still alive.
    busy: usize,
    alive: usize,
    /// The most threads, and how long one may sleep before it ends.
    max: usize,
    idle_timeout: Duration,
    /// Names the threads started (`diorite-py-N`).
    started: usize,
    /// Each live thread's id, by its number (empty off Linux).
    threads: Vec<(usize, i32)>,
    closed: bool,
}

impl State {
    /// The next job for a thread that is not running one, unless enough
    /// threads run already (when closing, every thread helps to finish).
    fn take_job(&mut self) -> Option<Job> {
        if self.running >= self.target && !self.closed {
            return None;
        }
        let job = self.queue.pop_front()?;
        self.running += 1;
        self.progress += 1;
        Some(job)
    }

    /// Has one more thread take a queued job: a sleeping one, else a new
    /// one while the pool is below its size.
    fn wake_one(&mut self, shared: &Arc<Shared>) {
        if let Some(sleeper) = self.sleepers.pop() {
            self.waking += 1;
            sleeper.thread.unpark();
        } else if self.alive < self.max {
            self.spawn(shared);
        }
    }

    fn spawn(&mut self, shared: &Arc<Shared>) {
        match spawn_thread(shared, self.started, true) {
            Ok(()) => {
                self.alive += 1;
                self.started += 1;
                // Counted as a wake-up until it runs: jobs queued while it
                // starts must not start more threads for the same need.
                self.waking += 1;
            }
            // The threads there are go on with the queue; the failure is
            // the system's (thread limits), and said once per attempt.
            Err(err) => log::error_from_any_thread(
                Logger::Server,
                &format!("cannot start a WSGI pool thread: {err}"),
            ),
        }
    }
}

/// Starts pool thread number `n`, attached for its whole life.
fn spawn_thread(shared: &Arc<Shared>, n: usize, woken: bool) -> std::io::Result<()> {
    let worker = Arc::clone(shared);
    std::thread::Builder::new()
        .name(format!("diorite-py-{n}"))
        .spawn(move || {
            let tid = thread_id();
            if let Some(tid) = tid {
                worker.lock().threads.push((n, tid));
            }
            Python::attach(|py| run(py, &worker, woken));
            if tid.is_some() {
                worker.lock().threads.retain(|(thread, _)| *thread != n);
            }
            // Else held for good: tens of MB after a burst of streamed
            // responses.
            memory::give_back_this_thread();
        })?;
    Ok(())
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}

impl PythonPool {
    /// A pool of at most `threads` threads, of which all but the first end
    /// after `idle_timeout` without a job.
    pub(crate) fn start(threads: usize, idle_timeout: Duration) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                sleepers: Vec::new(),
                next_sleeper: 0,
                waking: 0,
                running: 0,
                target: 1,
                progress: 0,
                monitor_asleep: false,
                busy: 0,
                alive: 1,
                max: threads.max(1),
                idle_timeout,
                started: 1,
                threads: Vec::new(),
                closed: false,
            }),
            queued: Condvar::new(),
            finished: Condvar::new(),
        });
        spawn_thread(&shared, 0, false)?;
        let watcher = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("diorite-py-monitor".into())
            .spawn(move || monitor(&watcher))?;
        Ok(Self { shared })
    }

    /// Queues `job` for a pool thread. Refused (dropped) once closed.
    pub(crate) fn submit(&self, job: Job) -> bool {
        let mut state = self.shared.lock();
        if state.closed {
            return false;
        }
        state.queue.push_back(job);
        state.busy += 1;
        if state.running == 0 && state.waking == 0 {
            // Nobody is working: start someone.
            state.progress += 1;
            state.wake_one(&self.shared);
        }
        if state.monitor_asleep {
            // It must watch this job in case the thread that takes it
            // blocks.
            state.monitor_asleep = false;
            self.shared.queued.notify_one();
        }
        true
    }

    /// Refuses new jobs and waits up to `grace` for queued and running ones.
    /// Returns true when no job is left: only then may the interpreter be
    /// finalized under these threads.
    pub(crate) fn shutdown(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        let mut state = self.shared.lock();
        state.closed = true;
        for sleeper in state.sleepers.drain(..) {
            sleeper.thread.unpark();
        }
        self.shared.queued.notify_all();
        while state.busy > 0 || state.alive > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self.shared.finished.wait_timeout(state, left);
        }
        state.busy == 0
    }
}

/// A pool thread's life: attached throughout, detached only to sleep.
/// `woken`: started for a wake-up, so counted in `waking` until here.
fn run(py: Python<'_>, shared: &Shared, woken: bool) {
    let mut state = shared.lock();
    if woken {
        state.waking = state.waking.saturating_sub(1);
    }
    loop {
        let job = match state.take_job() {
            Some(job) => {
                drop(state);
                job
            }
            None if state.closed => break,
            None => {
                drop(state);
                match py.detach(|| wait_for_job(shared)) {
                    Woke::Job(job) => job,
                    Woke::Closed => {
                        state = shared.lock();
                        break;
                    }
                    // Counted out already, under the lock that saw the
                    // other threads: two idle threads cannot both leave
                    // the pool empty.
                    Woke::Idle => return,
                }
            }
        };
        // A job is our own code and should never panic; if one does, the
        // thread must survive to keep the pool's size and counts right.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(py))).is_err() {
            log::error(
                py,
                Logger::Server,
                "internal error: a pool job panicked",
                None,
            );
        }
        // References that tokio threads dropped (response bodies shared
        // with hyper, parked iterators) wait for an attached thread; with
        // WSGI there is no event loop to release them, so the pool does.
        release_deferred(py);
        // One lock both to count this job done and to take the next.
        state = shared.lock();
        state.running -= 1;
        state.busy -= 1;
        state.progress += 1;
        if state.busy == 0 {
            shared.finished.notify_all();
        }
    }
    state.alive -= 1;
    shared.finished.notify_all();
}

/// A pool thread waiting for a job.
struct Sleeper {
    id: u64,
    thread: std::thread::Thread,
}

/// What a sleeping pool thread woke to.
enum Woke {
    Job(Job),
    Closed,
    /// It slept longer than the idle timeout and another thread is left:
    /// it ends, already counted out of `alive`.
    Idle,
}

/// Sleeps (without the GIL) until a job, shutdown or the idle timeout.
fn wait_for_job(shared: &Shared) -> Woke {
    let mut state = shared.lock();
    let mut idle_since = Instant::now();
    loop {
        if let Some(job) = state.take_job() {
            return Woke::Job(job);
        }
        if state.closed {
            return Woke::Closed;
        }
        let left = state.idle_timeout.saturating_sub(idle_since.elapsed());
        if left.is_zero() && state.alive > 1 {
            state.alive -= 1;
            shared.finished.notify_all();
            return Woke::Idle;
        }
        let id = state.next_sleeper;
        state.next_sleeper += 1;
        state.sleepers.push(Sleeper {
            id,
            thread: std::thread::current(),
        });
        drop(state);
        if left.is_zero() {
            std::thread::park();
        } else {
            std::thread::park_timeout(left);
        }
        state = shared.lock();
        match state.sleepers.iter().position(|s| s.id == id) {
            // Timed out (or woke spuriously): still listed, so nobody
            // counted on this thread; it looks at the queue and the clock.
            Some(listed) => {
                state.sleepers.remove(listed);
            }
            // Taken off the list by a wake-up (or shutdown).
            None => {
                state.waking = state.waking.saturating_sub(1);
                idle_since = Instant::now();
            }
        }
    }
}

/// The calling thread's id, to read its state from
/// `/proc/self/task/<id>/stat` (`None` off Linux: every stall then counts
/// as blocked, as before this was read).
fn thread_id() -> Option<i32> {
    #[cfg(target_os = "linux")]
    // SAFETY: no arguments, always succeeds.
    return Some(unsafe { libc::gettid() });
    #[cfg(not(target_os = "linux"))]
    return None;
}

/// Whether one of the pool's threads is running or ready to run (state
/// `R` in Linux's `/proc/self/task/TID/stat`): one that computes is, also
/// on a machine too busy to give it a core; one blocked on I/O, a sleep or
/// the GIL is not. (The kernel's CPU-time counters would not do: they are
/// brought up to date only at scheduler ticks, milliseconds apart.)
fn any_runnable(threads: &[(usize, i32)]) -> bool {
    threads.iter().any(|(_, tid)| {
        std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).is_ok_and(|stat| {
            // "TID (NAME) STATE ...": the name may hold spaces and brackets.
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('R'))
        })
    })
}

/// Wakes another thread when queued jobs see no progress for [`STALL`]
/// and none of the pool's threads is running: they are all blocked.
/// Threads found computing lower the number allowed to run, and get
/// company only after [`LONG_JOB`].
fn monitor(shared: &Arc<Shared>) {
    let mut state = shared.lock();
    let (mut seen, mut since) = (state.progress, Instant::now());
    let mut last_queued = Instant::now();
    // When the pool's threads were last looked at.
    let mut last_look = Instant::now();
    while !state.closed {
        if state.queue.is_empty() {
            if last_queued.elapsed() >= IDLE {
                state.monitor_asleep = true;
                while state.monitor_asleep && !state.closed {
                    state = shared.queued.wait(state);
                }
            }
            (seen, since) = (state.progress, Instant::now());
        } else {
            last_queued = Instant::now();
            if state.progress != seen {
                (seen, since) = (state.progress, Instant::now());
            } else if since.elapsed() >= STALL && state.waking == 0 {
                // With every thread busy nobody can be woken: look only
                // now and then, to lower the target if they compute.
                let can_wake = !state.sleepers.is_empty() || state.alive < state.max;
                if can_wake || last_look.elapsed() >= LONG_JOB {
                    last_look = Instant::now();
                    // Read without the lock: threads finishing jobs need
                    // it, and there may be dozens of files to read.
                    let threads = state.threads.clone();
                    drop(state);
                    let computing = any_runnable(&threads);
                    state = shared.lock();
                    // Progress meanwhile: not a stall after all.
                    if state.progress == seen && state.waking == 0 && !state.queue.is_empty() {
                        if computing {
                            state.target = state.target.saturating_sub(1).max(1);
                        }
                        if !computing || since.elapsed() >= LONG_JOB {
                            since = Instant::now();
                            state.target = (state.running + 1).min(state.max);
                            state.wake_one(shared);
                        }
                    }
                }
            }
        }
        state = shared.queued.wait_timeout(state, STALL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_blocking_jobs_spreads_over_the_pool() {
        // Submitted faster than a thread wakes: every job after the first
        // is queued while the first wake-up is still in flight, and the
        // monitor must still see them.
        Python::initialize();
        let pool = PythonPool::start(8, Duration::from_secs(30)).unwrap();
        let started = Instant::now();
        let (done, finished) = std::sync::mpsc::channel();
        for _ in 0..8 {
            let done = done.clone();
            pool.submit(Box::new(move |py| {
                py.detach(|| std::thread::sleep(Duration::from_millis(300)));
                done.send(()).unwrap();
            }));
        }
        for _ in 0..8 {
            finished.recv_timeout(Duration::from_secs(5)).unwrap();
        }
        // One after another they would take 2.4 s.
        assert!(started.elapsed() < Duration::from_millis(1200));
        assert!(pool.shutdown(Duration::from_secs(1)));
    }

    fn alive(pool: &PythonPool) -> usize {
        pool.shared.lock().alive
    }

    #[test]
    fn threads_start_when_needed_and_end_when_idle() {
        Python::initialize();
        let pool = PythonPool::start(4, Duration::from_millis(200)).unwrap();
        assert_eq!(alive(&pool), 1);
        for round in 0..2 {
            let (done, finished) = std::sync::mpsc::channel();
            for _ in 0..4 {
                let done = done.clone();
                pool.submit(Box::new(move |py| {
                    py.detach(|| std::thread::sleep(Duration::from_millis(150)));
                    done.send(()).unwrap();
                }));
            }
            for _ in 0..4 {
                finished.recv_timeout(Duration::from_secs(5)).unwrap();
            }
            assert_eq!(alive(&pool), 4, "round {round}: the burst got every thread");
            let deadline = Instant::now() + Duration::from_secs(5);
            while alive(&pool) > 1 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert_eq!(
                alive(&pool),
                1,
                "round {round}: idle threads ended, the first stayed"
            );
        }
        assert!(pool.shutdown(Duration::from_secs(1)));
    }
}
