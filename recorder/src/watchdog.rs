//! The watchdog thread (`hindsight-watchdog`) of a flight recording: a few times a second it
//! reads the [wait board](crate::waits) and the `SIGUSR1` flag, and asks the writer for a
//! dump when a lock wait has lasted longer than a threshold or the signal came.
//!
//! Two thresholds, each optional: the *hang* threshold (default 5 s) and the *contention*
//! threshold (default off). A wait counts from its lock request to its acquisition (or
//! abandonment) — of a thread blocked on a [blocking lock](crate::sync::Mutex), of a task
//! suspended on an [async one](crate::sync::tokio::Mutex) or on one of tokio's own locks seen
//! through its instrumentation, or of a [user-defined lock](crate::layer#user-defined-locks).
//! Joins are not watched: waiting a long time for a thread or task to finish is normal.
//!
//! Debouncing: after a hang dump the watchdog stays quiet until every wait it saw over the
//! threshold has ended, so one hang is one dump however long it lasts (and however many
//! requests pile up behind it); a later, new hang dumps again. Contention dumps follow the
//! same rule, come at most once per [`CONTENTION_COOLDOWN`], and not at all while a hang
//! goes on (the waits piling up behind a hang are that hang); a contended wait that grows
//! into a hang still makes a hang dump.

use crate::clock;
use crate::mode::{FlightRecorder, CONTENTION_COOLDOWN};
use crate::session::{self, Session};
use crate::trigger::DumpRequest;
use crate::waits::{self, Waiting};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest time between two looks at the board and the signal flag.
const PERIOD: Duration = Duration::from_millis(250);

/// One threshold and its debounce state.
#[derive(Debug)]
struct Threshold {
    contention: bool,
    ticks: u64,
    /// The waits over the threshold at the last dump; quiet until they have all ended.
    reported: Vec<(usize, u64)>,
    last_dump: Option<Instant>,
}

impl Threshold {
    fn new(contention: bool, threshold: Option<Duration>) -> Option<Threshold> {
        let ticks = clock::ticks_for(threshold?.as_nanos().min(u64::MAX as u128) as u64);
        Some(Threshold { contention, ticks, reported: Vec::new(), last_dump: None })
    }

    /// Whether waits it reported are still going on.
    fn is_quiet(&mut self) -> bool {
        self.reported.retain(|(slot, since)| waits::still_waiting(*slot, *since));
        !self.reported.is_empty()
    }

    /// The dump to ask for, if the board shows a new wait over the threshold (and below
    /// `ceiling` ticks, if given).
    fn check(
        &mut self,
        session: &Session,
        waits: &[Waiting],
        now: u64,
        ceiling: Option<u64>,
    ) -> Option<DumpRequest> {
        if self.is_quiet() {
            return None;
        }
        let cooling =
            self.contention && self.last_dump.is_some_and(|at| at.elapsed() < CONTENTION_COOLDOWN);
        let over: Vec<&Waiting> = waits
            .iter()
            .filter(|w| {
                let age = now.saturating_sub(w.since);
                age >= self.ticks && !matches!(ceiling, Some(ceiling) if age >= ceiling)
            })
            .collect();
        let oldest = over.iter().min_by_key(|w| w.since)?;
        if cooling {
            return None;
        }
        self.reported = over.iter().map(|w| (w.slot, w.since)).collect();
        self.last_dump = Some(Instant::now());
        let waited = Duration::from_nanos(clock::to_nanos(oldest.since, now));
        let registry = session::lock(&session.registry);
        let who = match oldest.task {
            Some(task) => registry.describe_task(task),
            None => registry.describe_thread(oldest.thread),
        };
        let lock = registry.describe_lock(oldest.lock);
        Some(DumpRequest::wait(self.contention, &who, waited, &lock, over.len() - 1))
    }
}

/// Starts the watchdog of `session` with the triggers of `config`; `signal` if `SIGUSR1` is
/// being listened to.
pub(crate) fn spawn(
    session: Arc<Session>,
    config: &FlightRecorder,
    signal: bool,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let mut hang = Threshold::new(false, config.watchdog);
    let mut contention = Threshold::new(true, config.contention);
    let shortest = [config.watchdog, config.contention].into_iter().flatten().min();
    let period = shortest.map_or(PERIOD, |t| (t / 4).clamp(Duration::from_millis(1), PERIOD));
    std::thread::Builder::new().name("hindsight-watchdog".into()).spawn(move || loop {
        std::thread::park_timeout(period);
        if session.is_stopping() {
            break;
        }
        if signal && crate::signal::arrived() {
            session.request_dump(DumpRequest::signal());
        }
        if hang.is_none() && contention.is_none() {
            continue;
        }
        let board = waits::current(session.generation());
        let now = clock::ticks();
        if let Some(hang) = &mut hang {
            if let Some(request) = hang.check(&session, &board, now, None) {
                session.request_dump(request);
                continue;
            }
            if hang.is_quiet() {
                continue;
            }
        }
        let ceiling = hang.as_ref().map(|hang| hang.ticks);
        if let Some(request) =
            contention.as_mut().and_then(|c| c.check(&session, &board, now, ceiling))
        {
            session.request_dump(request);
        }
    })
}
