//! The trace format's size target: at most four bytes per event, framing and definitions
//! included, on a realistic mix of events (a size bound, not a timing).

use hindsight_recorder::format::{Item, TraceBuilder, TraceReader};

/// A small deterministic generator of time steps, as irregular as a real program's.
struct Steps(u64);

impl Steps {
    /// The next step: 50 ns to 1.5 µs (the committed traces' events are 0.1–2 µs apart on a
    /// thread, mostly).
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        50 + (self.0 >> 33) % 1450
    }
}

/// Two threads locking wrapper mutexes in a loop (a tenth of the acquisitions contended), and
/// eight tasks on two worker threads polling, taking an async mutex and an async rwlock, and
/// waking each other.
fn realistic_trace() -> (Vec<u8>, usize) {
    let mut b = TraceBuilder::new("mix");
    // A stretch of a recording, which the clean end's batch would not change.
    b.end_mid_flight();
    b.step(0);
    let mut steps = Steps(7);
    let threads = [b.thread("main"), b.thread("worker")];
    let workers = [b.thread("tokio-1"), b.thread("tokio-2")];
    let mutexes = [b.mutex("cache"), b.mutex("stats")];
    let async_mutex = b.async_mutex("queue");
    let async_rwlock = b.async_rwlock("config");
    let sites: Vec<_> = (0..6).map(|line| b.site("src/service.rs", 10 + line, 9)).collect();
    let tasks: Vec<_> = (0..8).map(|i| b.task(&format!("conn-{i}"), None)).collect();
    for round in 0..4000u32 {
        let i = round as usize;
        let (thread, mutex) = (threads[i % 2], mutexes[i / 2 % 2]);
        let mut actor = b.on(thread);
        if round % 10 == 0 {
            actor = actor.request(mutex, sites[i % 2]).advance(steps.next());
        }
        actor = actor.acquire(mutex, sites[i % 2]).advance(steps.next());
        actor.release(mutex).advance(steps.next());

        let (worker, task) = (workers[i % 2], tasks[i % 8]);
        let actor = b.in_task(worker, task).poll_start().advance(steps.next());
        let actor = if round % 3 == 0 {
            actor
                .acquire_shared(async_rwlock, sites[4])
                .advance(steps.next())
                .release_shared(async_rwlock)
        } else {
            actor.acquire(async_mutex, sites[2 + i % 2]).advance(steps.next()).release(async_mutex)
        };
        actor
            .advance(steps.next())
            .wake(tasks[(i + 3) % 8])
            .advance(steps.next())
            .poll_end(false)
            .advance(steps.next());
    }
    let events = b.events().len();
    (b.build_grouped_by_thread(), events)
}

#[test]
fn a_realistic_mix_of_events_takes_at_most_four_bytes_each() {
    let (bytes, events) = realistic_trace();
    // The trace reads back whole.
    let read: usize = TraceReader::from_reader(bytes.as_slice(), "mix")
        .expect("opens")
        .map(|item| match item {
            Item::Events(batch) => batch.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(read, events);
    let per_event = bytes.len() as f64 / events as f64;
    println!("{per_event:.2} bytes per event ({} B, {events} events)", bytes.len());
    assert!(
        per_event <= 4.0,
        "{per_event:.2} bytes per event ({} B, {events} events)",
        bytes.len()
    );
}
