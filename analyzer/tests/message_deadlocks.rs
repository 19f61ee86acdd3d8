//! `deadlock` through channels: actors that wait for replies only other stuck actors could
//! send, found from where the replies' sending ends may have gone; and the waits that are no
//! hang (idle mailboxes, a reply with a timeout, a sender whose holder ended, a sender the
//! trace cannot follow).

mod common;

use common::{analyze, of_kind};
use hindsight_analyzer::report::Severity;
use hindsight_analyzer::FindingKind;
use hindsight_recorder::format::{ChannelKind, SiteId, TraceBuilder};

/// How the end of the trace looks in [`actors`].
#[derive(Clone, Copy, PartialEq)]
enum Ending {
    /// Both actors await each other's replies: a deadlock.
    BothAwaitReplies,
    /// `pricing` awaits its reply with a timeout (a `Sleep` pending in the same poll).
    WithTimeout,
    /// `inventory` finished, dropping whatever it held.
    InventoryEnded,
    /// Both actors are idle on their mailboxes.
    Idle,
}

/// Two actor tasks with mailboxes, spawned by `main` (which creates the mailboxes): each
/// sends the other a request carrying the sending end of a reply channel, and waits for
/// its reply; neither reads its mailbox again. `ending` changes the end.
fn actors(ending: Ending) -> TraceBuilder {
    let mut b = TraceBuilder::new("actors");
    let (main, worker) = (b.thread("main"), b.thread("tokio-runtime-worker"));
    let spawn = b.site("src/main.rs", 3, 5);
    let (inventory, pricing) = (b.task("inventory", Some(spawn)), b.task("pricing", Some(spawn)));
    let (inventory_box, pricing_box) =
        (b.channel("inventory-mailbox"), b.channel("pricing-mailbox"));
    let (price_reply, stock_reply) = (b.channel("price-reply"), b.channel("stock-reply"));
    let site = |b: &mut TraceBuilder, line| b.site("src/shop.rs", line, 9);
    let (recv, send, await_reply) = (site(&mut b, 10), site(&mut b, 20), site(&mut b, 30));
    let sleep = site(&mut b, 40);
    b.on(main)
        .create_channel(inventory_box, ChannelKind::Queue)
        .create_channel(pricing_box, ChannelKind::Queue)
        .spawn_task(inventory, Some(spawn))
        .spawn_task(pricing, Some(spawn));
    // Each actor read a first message from its mailbox: it is that mailbox's reader.
    b.in_task(worker, inventory).poll_start().receive(inventory_box, 1, recv).poll_end(false);
    b.in_task(worker, pricing).poll_start().receive(pricing_box, 2, recv).poll_end(false);
    if ending == Ending::Idle {
        b.in_task(worker, inventory)
            .poll_start()
            .receive_waiting(inventory_box, recv)
            .poll_end(false);
        b.in_task(worker, pricing).poll_start().receive_waiting(pricing_box, recv).poll_end(false);
        b.advance(2_000_000_000);
        return b;
    }
    b.in_task(worker, inventory)
        .poll_start()
        .create_channel(price_reply, ChannelKind::Oneshot)
        .send(pricing_box, 3, send)
        .receive_waiting(price_reply, await_reply)
        .poll_end(false);
    let pricing_poll = b.in_task(worker, pricing).poll_start();
    let pricing_poll = pricing_poll
        .create_channel(stock_reply, ChannelKind::Oneshot)
        .send(inventory_box, 4, send)
        .receive_waiting(stock_reply, await_reply);
    if ending == Ending::WithTimeout {
        pricing_poll.await_pending(sleep).poll_end(false);
    } else {
        pricing_poll.poll_end(false);
    }
    if ending == Ending::InventoryEnded {
        b.in_task(worker, inventory)
            .poll_start()
            .poll_end(true)
            .event(hindsight_recorder::format::EventKind::TaskFinished { cancelled: true });
    }
    b.advance(2_000_000_000);
    b.on(main).mark("watchdog");
    b
}

fn deadlocks(b: &TraceBuilder) -> Vec<(Severity, Vec<String>)> {
    let report = analyze(b);
    of_kind(&report, FindingKind::Deadlock).iter().map(|f| (f.severity, f.tasks.clone())).collect()
}

#[test]
fn actors_awaiting_each_others_replies_are_one_deadlock() {
    let report = analyze(&actors(Ending::BothAwaitReplies));
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let finding = &report.findings[0];
    assert_eq!((finding.kind, finding.severity), (FindingKind::Deadlock, Severity::Error));
    assert_eq!(
        finding.title,
        "task `inventory` and task `pricing` wait for each other's messages forever"
    );
    assert_eq!(
        finding.evidence[0],
        "task `inventory` waits for the reply on `price-reply` at src/shop.rs:30:9; only task \
         `pricing` (it reads `pricing-mailbox`, where the message task `inventory` sent at \
         src/shop.rs:20:9 may carry it, still unread) may hold its sending end, and it is stuck \
         too, since t=130ns"
    );
}

#[test]
fn a_reply_awaited_with_a_timeout_is_no_deadlock() {
    // `pricing` will wake at its timeout; then `inventory` may get its reply. What is left
    // is a long wait, a warning.
    let inventory = vec!["inventory".to_owned()];
    assert_eq!(deadlocks(&actors(Ending::WithTimeout)), vec![(Severity::Warning, inventory)]);
}

#[test]
fn a_reply_whose_possible_sender_ended_is_no_deadlock() {
    // `inventory` ended: the sending end it may have held was dropped, which wakes `pricing`.
    assert_eq!(deadlocks(&actors(Ending::InventoryEnded)), vec![]);
}

#[test]
fn actors_idle_on_their_mailboxes_are_no_hang() {
    assert_eq!(analyze(&actors(Ending::Idle)).findings, vec![]);
}

/// One thread waits in a blocking receive for a reply whose sending end it gave to `worker`
/// with a message; `worker` waits for a lock the first thread holds.
fn reply_and_lock(worker_waits: bool) -> TraceBuilder {
    let mut b = TraceBuilder::new("reply-and-lock");
    let (ta, worker) = (b.thread("a"), b.thread("worker"));
    let (jobs, reply) = (b.channel("jobs"), b.channel("reply"));
    let db = b.mutex("db");
    let s: SiteId = b.site("src/a.rs", 1, 1);
    b.on(ta).create_channel(jobs, ChannelKind::Queue).spawn_thread(worker, Some(s));
    b.on(worker).receive(jobs, 1, s);
    b.on(ta).acquire(db, s).create_channel(reply, ChannelKind::Oneshot).send(jobs, 2, s);
    b.on(worker).receive(jobs, 2, s);
    b.on(ta).receive_waiting(reply, s);
    if worker_waits {
        b.on(worker).request(db, s);
    }
    b.advance(2_000_000_000);
    b
}

#[test]
fn a_thread_awaiting_a_reply_from_a_thread_that_waits_for_its_lock_is_a_deadlock() {
    let report = analyze(&reply_and_lock(true));
    let found: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::Deadlock)
        .map(|f| (f.severity, f.threads.clone()))
        .collect();
    assert_eq!(found, vec![(Severity::Error, vec!["a".to_owned(), "worker".to_owned()])]);
    // The worker still runs: the reply may come.
    let report = analyze(&reply_and_lock(false));
    assert!(
        report.findings.iter().all(|f| f.kind != FindingKind::Deadlock),
        "{:#?}",
        report.findings
    );
}

#[test]
fn a_reply_whose_sender_never_left_the_waiter_is_not_claimed() {
    // The sending end went nowhere the trace shows (say, into a shared map): nobody can be
    // named, so no deadlock is claimed, and a wait of 2 s is reported as a long wait only
    // if someone could end it.
    let mut b = TraceBuilder::new("stash");
    let (worker, _main) = (b.thread("tokio-runtime-worker"), b.thread("main"));
    let task = b.task("caller", None);
    let reply = b.channel("reply");
    let s = b.site("src/a.rs", 1, 1);
    b.in_task(worker, task)
        .poll_start()
        .create_channel(reply, ChannelKind::Oneshot)
        .receive_waiting(reply, s)
        .poll_end(false);
    b.advance(2_000_000_000);
    assert_eq!(analyze(&b).findings, vec![]);
}

#[test]
fn a_notification_only_stuck_tasks_could_send_is_a_deadlock() {
    // `main` creates the notifier `space` and spawns `flusher` and `writer` (both may hold
    // it), then joins `flusher`. `flusher` holds `buffer` and waits for `space`; `writer`,
    // which would notify, waits for `buffer`.
    let mut b = TraceBuilder::new("notify");
    let (main, worker) = (b.thread("main"), b.thread("tokio-runtime-worker"));
    let (flusher, writer) = (b.task("flusher", None), b.task("writer", None));
    let space = b.channel("space");
    let buffer = b.async_mutex("buffer");
    let s = b.site("src/log.rs", 7, 9);
    b.on(main)
        .create_channel(space, ChannelKind::Notify)
        .spawn_task(flusher, None)
        .spawn_task(writer, None);
    b.in_task(worker, flusher)
        .poll_start()
        .acquire(buffer, s)
        .receive_waiting(space, s)
        .poll_end(false);
    b.in_task(worker, writer).poll_start().request(buffer, s).poll_end(false);
    b.on(main).event(hindsight_recorder::format::EventKind::TaskJoinRequested {
        task: flusher,
        site: Some(s),
    });
    b.advance(2_000_000_000);
    let report = analyze(&b);
    let found: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::Deadlock)
        .map(|f| (f.severity, f.tasks.clone(), f.threads.clone()))
        .collect();
    assert_eq!(
        found,
        vec![(
            Severity::Error,
            vec!["flusher".to_owned(), "writer".to_owned()],
            vec!["tokio-runtime-worker".to_owned(), "main".to_owned()]
        )]
    );
}
