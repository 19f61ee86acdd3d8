//! The channel wrappers — tokio's `mpsc` (bounded and unbounded) and `oneshot`, std's `mpsc` —
//! deliver what they are given, and record each message: a `Send` at the send's site and a
//! `Receive` with the same channel and message id at the receipt's site, the send first; with
//! one thread and with many.
#![cfg(feature = "record")]

mod common;

use common::{serial, trace_path, Trace};
use hindsight_recorder::channel::{mpsc, oneshot, std_mpsc};
use hindsight_recorder::format::{ChannelId, Definition, Event, EventKind, SiteId, ThreadId};
use hindsight_recorder::Recorder;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// A message event reduced: send or receive, channel, message id, site line, time, actor.
#[derive(Debug, Clone, Copy)]
struct Message {
    send: bool,
    channel: ChannelId,
    id: u64,
    line: u32,
    time_ns: u64,
    thread: ThreadId,
}

fn message(trace: &Trace, event: &Event) -> Option<Message> {
    let (send, channel, id, site): (bool, ChannelId, u64, SiteId) = match event.kind {
        EventKind::Send { channel, message, site } => (true, channel, message, site),
        EventKind::Receive { channel, message, site } => (false, channel, message, site),
        _ => return None,
    };
    let (file, line, _) = trace.site(site).expect("the site is defined");
    assert_eq!(file, file!());
    Some(Message { send, channel, id, line, time_ns: event.time_ns, thread: event.thread })
}

fn messages(trace: &Trace) -> Vec<Message> {
    trace.events.iter().filter_map(|e| message(trace, e)).collect()
}

/// Channel definitions: id -> (name, creation line).
fn channels(trace: &Trace) -> HashMap<ChannelId, (Option<String>, u32)> {
    trace
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Channel(c) => {
                let (file, line, _) = trace.site(c.site.expect("a creation site")).unwrap();
                assert_eq!(file, file!());
                Some((c.id, (c.name.and_then(|n| trace.string(n)), line)))
            }
            _ => None,
        })
        .collect()
}

/// Checks that every message sent was received exactly once, on its channel, after it was
/// sent, and that ids are unique; returns (id -> (send, receive)).
fn pairs(all: &[Message]) -> HashMap<u64, (Message, Message)> {
    let mut sends = HashMap::new();
    for m in all.iter().filter(|m| m.send) {
        assert!(sends.insert(m.id, *m).is_none(), "message {} sent twice", m.id);
    }
    let mut pairs = HashMap::new();
    for m in all.iter().filter(|m| !m.send) {
        let send = sends.get(&m.id).unwrap_or_else(|| panic!("message {} never sent", m.id));
        assert_eq!(send.channel, m.channel);
        assert!(send.time_ns <= m.time_ns, "message {} received before it was sent", m.id);
        assert!(pairs.insert(m.id, (*send, *m)).is_none(), "message {} received twice", m.id);
    }
    assert!(!sends.contains_key(&0) && !pairs.contains_key(&0), "0 means unrecorded");
    pairs
}

#[test]
fn a_bounded_tokio_channel_records_sends_and_receipts_in_one_task() {
    let _turn = serial();
    let path = trace_path("channel-mpsc");
    let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let created = line!() + 1;
    let (tx, mut rx) = mpsc::channel_named("jobs", 2);
    let (send_line, try_line, recv_line, try_recv_line) =
        (line!() + 2, line!() + 3, line!() + 6, line!() + 8);
    let received = runtime.block_on(async {
        tx.send(1).await.unwrap();
        tx.try_send(2).unwrap();
        // Full: the failed attempt records nothing.
        assert!(matches!(tx.try_send(3), Err(mpsc::error::TrySendError::Full(3))));
        let first = rx.recv().await.unwrap();
        assert_eq!((tx.capacity(), tx.max_capacity(), rx.len()), (1, 2, 1));
        let second = rx.try_recv().unwrap();
        assert!(rx.try_recv().is_err() && rx.is_empty());
        drop(tx);
        assert!(rx.recv().await.is_none() && rx.is_closed());
        [first, second]
    });
    assert_eq!(received, [1, 2]);
    assert_eq!(rx.name(), Some("jobs"));
    drop(runtime);
    guard.finish().unwrap();

    let trace = Trace::read(&path);
    let all = messages(&trace);
    let seen: Vec<_> = all.iter().map(|m| (m.send, m.line)).collect();
    assert_eq!(
        seen,
        [(true, send_line), (true, try_line), (false, recv_line), (false, try_recv_line)]
    );
    let pairs = pairs(&all);
    assert_eq!(pairs.len(), 2);
    assert_eq!(all[0].id, all[2].id, "first in, first out");
    assert_eq!(all[1].id, all[3].id);
    let defined = channels(&trace);
    assert_eq!(defined.len(), 1);
    assert_eq!(defined[&all[0].channel], (Some("jobs".to_owned()), created));
}

#[test]
fn many_producers_on_many_workers_each_message_received_once_after_its_send() {
    const PRODUCERS: usize = 4;
    const EACH: usize = 50;
    let _turn = serial();
    let path = trace_path("channel-mpsc-many");
    let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let (bounded_tx, mut bounded_rx) = mpsc::channel::<usize>(4);
    let (unbounded_tx, mut unbounded_rx) = mpsc::unbounded_channel::<usize>();
    let (send_line, unbounded_line) = (line!() + 7, line!() + 8);
    let (sum, count) = runtime.block_on(async {
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (tx, utx) = (bounded_tx.clone(), unbounded_tx.clone());
                hindsight_recorder::task::spawn(&format!("producer-{p}"), async move {
                    for i in 0..EACH {
                        tx.send(p * EACH + i).await.unwrap();
                        utx.send(1).unwrap();
                    }
                })
            })
            .collect();
        drop((bounded_tx, unbounded_tx));
        let consumer = hindsight_recorder::task::spawn("consumer", async move {
            let (mut sum, mut count) = (0, 0);
            while let Some(value) = bounded_rx.recv().await {
                sum += value;
            }
            while let Some(one) = unbounded_rx.recv().await {
                count += one;
            }
            (sum, count)
        });
        for producer in producers {
            producer.await.unwrap();
        }
        consumer.await.unwrap()
    });
    let n = PRODUCERS * EACH;
    assert_eq!((sum, count), (n * (n - 1) / 2, n));
    drop(runtime);
    guard.finish().unwrap();

    let trace = Trace::read(&path);
    let all = messages(&trace);
    let pairs = pairs(&all);
    assert_eq!(pairs.len(), 2 * n, "every message sent was received");
    assert_eq!(all.len(), 4 * n);
    assert_eq!(channels(&trace).len(), 2);
    let sends: HashSet<u32> = all.iter().filter(|m| m.send).map(|m| m.line).collect();
    assert_eq!(sends, HashSet::from([send_line, unbounded_line]));
    // Every event names the task that made it.
    let tasked = trace
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Send { .. } | EventKind::Receive { .. }))
        .all(|e| e.task.is_some());
    assert!(tasked);
}

#[test]
fn a_oneshot_records_its_message_at_the_await() {
    let _turn = serial();
    let path = trace_path("channel-oneshot");
    let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let lines = (line!() + 4, line!() + 6, line!() + 10, line!() + 11, line!() + 16);
    let values = runtime.block_on(async {
        let (tx, rx) = oneshot::channel_named("reply");
        let reply = hindsight_recorder::task::spawn("replier", async move {
            tx.send("done").unwrap();
        });
        let value = rx.await.unwrap();
        reply.await.unwrap();

        let (tx, mut rx) = oneshot::channel::<u32>();
        tx.send(5).unwrap();
        let again = rx.recv().await.unwrap();

        let (tx, mut rx) = oneshot::channel::<u32>();
        assert!(rx.try_recv().is_err() && !tx.is_closed());
        tx.send(6).unwrap();
        let tried = rx.try_recv().unwrap();

        let (tx, rx) = oneshot::channel::<u32>();
        drop(tx);
        assert!(rx.await.is_err(), "the sender is gone");
        (value, again, tried)
    });
    assert_eq!(values, ("done", 5, 6));
    drop(runtime);
    guard.finish().unwrap();

    let trace = Trace::read(&path);
    let all = messages(&trace);
    let seen: Vec<_> = all.iter().map(|m| (m.send, m.line)).collect();
    let (send, awaited, sent, recv, tried) = lines;
    assert_eq!(
        seen,
        [
            (true, send),
            (false, awaited),
            (true, sent),
            (false, recv),
            (true, tried - 1),
            (false, tried)
        ]
    );
    assert_eq!(pairs(&all).len(), 3);
    let names: HashSet<_> = channels(&trace).into_values().map(|(name, _)| name).collect();
    assert_eq!(names, HashSet::from([Some("reply".to_owned()), None]));
}

#[test]
fn std_channels_hand_messages_between_threads() {
    const PRODUCERS: usize = 3;
    let _turn = serial();
    let path = trace_path("channel-std");
    let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();
    let (tx, rx) = std_mpsc::channel_named::<u32>("results");
    let (sync_tx, sync_rx) = std_mpsc::sync_channel::<u32>(0);
    let (send_line, sync_line) = (line!() + 6, line!() + 7);
    let producers: Vec<_> = (0..PRODUCERS as u32)
        .map(|p| {
            let (tx, sync_tx) = (tx.clone(), sync_tx.clone());
            hindsight_recorder::thread::spawn(&format!("producer-{p}"), move || {
                for i in 0..10 {
                    tx.send(p * 10 + i).unwrap();
                    sync_tx.send(1).unwrap(); // a rendezvous with the main thread
                }
            })
            .unwrap()
        })
        .collect();
    drop((tx, sync_tx));
    let (recv_line, timeout_line) = (line!() + 2, line!() + 3);
    for _ in 0..PRODUCERS * 10 {
        assert_eq!(sync_rx.recv().unwrap(), 1);
        assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok());
    }
    for producer in producers {
        producer.join().unwrap();
    }
    assert!(rx.try_recv().is_err() && sync_rx.recv().is_err());
    guard.finish().unwrap();

    let trace = Trace::read(&path);
    let all = messages(&trace);
    let pairs = pairs(&all);
    assert_eq!(pairs.len(), 2 * PRODUCERS * 10);
    let main = all.iter().find(|m| !m.send).map(|m| m.thread).unwrap();
    for (send, receive) in pairs.values() {
        assert_ne!(send.thread, main);
        assert_eq!(receive.thread, main);
        let expected = if send.line == send_line { timeout_line } else { recv_line };
        assert!(send.line == send_line || send.line == sync_line);
        assert_eq!(receive.line, expected);
    }
}

#[test]
fn tokio_channels_from_threads_and_messages_sent_before_recording() {
    let _turn = serial();
    // Sent while nothing records: delivered, and never recorded.
    let (tx, mut rx) = mpsc::unbounded_channel::<u32>();
    tx.send(1).unwrap();
    let (btx, mut brx) = mpsc::channel::<u32>(1);

    let path = trace_path("channel-blocking");
    let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();
    assert_eq!(rx.try_recv().unwrap(), 1);
    let send_line = line!() + 2;
    let producer = hindsight_recorder::thread::spawn("producer", move || {
        btx.blocking_send(2).unwrap();
        btx
    })
    .unwrap();
    let recv_line = line!() + 1;
    assert_eq!(brx.blocking_recv(), Some(2));
    let btx = producer.join().unwrap();
    drop(btx);
    assert_eq!(brx.blocking_recv(), None);
    guard.finish().unwrap();

    let trace = Trace::read(&path);
    let all = messages(&trace);
    let seen: Vec<_> = all.iter().map(|m| (m.send, m.line)).collect();
    assert_eq!(seen, [(true, send_line), (false, recv_line)]);
    assert_eq!(pairs(&all).len(), 1);
}

#[test]
fn channels_record_their_creation_and_each_receive_that_waits() {
    use hindsight_recorder::format::ChannelKind;
    use hindsight_recorder::sync::Notify;
    let _turn = serial();
    let path = trace_path("channel-waits");
    let (_layer, guard) = Recorder::builder().path(&path).build().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let waited_at = (line!() + 8, line!() + 9, line!() + 10);
    runtime.block_on(async {
        let (tx, rx) = oneshot::channel_named::<u32>("reply");
        let (queue_tx, mut queue_rx) = mpsc::channel_named::<u32>("queue", 4);
        let ready = std::sync::Arc::new(Notify::named("ready"));
        let helper = hindsight_recorder::task::spawn("helper", {
            let ready = ready.clone();
            async move {
                let reply = rx.await.unwrap();
                let queued = queue_rx.recv().await.unwrap();
                ready.notified().await;
                reply + queued
            }
        });
        // Each of the helper's three waits is pending once before it is served.
        let pause = || tokio::time::sleep(Duration::from_millis(5));
        pause().await;
        tx.send(1).unwrap();
        pause().await;
        queue_tx.send(2).await.unwrap();
        pause().await;
        ready.notify_one();
        assert_eq!(helper.await.unwrap(), 3);
        // A receipt with the value already there does not wait.
        let (tx, rx) = oneshot::channel::<u32>();
        tx.send(4).unwrap();
        assert_eq!(rx.await.unwrap(), 4);
    });
    drop(runtime);
    guard.finish().unwrap();

    let trace = Trace::read(&path);
    let names = channels(&trace);
    let name = |channel: ChannelId| names[&channel].0.clone().unwrap_or_default();
    let created: Vec<(String, ChannelKind)> = trace
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::ChannelCreated { channel, kind } => Some((name(channel), kind)),
            _ => None,
        })
        .collect();
    let created_names: Vec<(&str, ChannelKind)> =
        created.iter().map(|(n, k)| (n.as_str(), *k)).collect();
    assert_eq!(
        created_names,
        [
            ("reply", ChannelKind::Oneshot),
            ("queue", ChannelKind::Queue),
            ("ready", ChannelKind::Notify),
            ("", ChannelKind::Oneshot)
        ]
    );
    let waits: Vec<(String, u32)> = trace
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::ReceiveWaiting { channel, site } => {
                Some((name(channel), trace.site(site).expect("a site").1))
            }
            _ => None,
        })
        .collect();
    let (reply, queue, ready) = waited_at;
    assert_eq!(
        waits,
        [("reply".to_owned(), reply), ("queue".to_owned(), queue), ("ready".to_owned(), ready)]
    );
}
