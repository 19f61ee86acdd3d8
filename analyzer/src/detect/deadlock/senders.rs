//! Who may hold a channel's sending end: who could still send the message a receiver waits
//! for.
//!
//! A trace does not record where a `Sender` value goes, only what its holders do. But a value
//! moves between actors only by being sent in a message or moved into a spawned thread or
//! task. So the sending end of a channel starts with the actor that created it, and reaches
//! whoever receives a message that one of its possible holders sent after it got it, or is
//! spawned by one of them; a message still in flight at the end reaches whoever receives from
//! its channel. That set holds the real holder, as long as the sending end travelled only
//! through recorded channels and spawns (a sender stored in shared memory is not followed:
//! the first actors that received a message are still in the set, but whoever takes it from
//! the shared place is not).
//!
//! The reach is followed as the trace streams by, for channels created since the start of
//! the trace (their [`ChannelCreated`](EventKind::ChannelCreated) event is in it) and still
//! live: a one-shot channel leaves once its value is sent. Everything is bounded; where a
//! bound cut a channel's reach short, its reach is unknown, and nothing rests on it.

use crate::replay::Actor;
use hindsight_recorder::format::{ChannelId, ChannelKind, Event, EventKind, SiteId};
use std::collections::{HashMap, VecDeque};

/// Channels followed at once; the oldest are forgotten beyond.
const MAX_CHANNELS: usize = 1 << 14;
/// Possible holders of one channel's sending end; beyond, its reach is unknown.
const MAX_HOLDERS: usize = 256;
/// Channels one actor may hold that a message of its is taken to carry; beyond, the oldest
/// one's reach is unknown.
const MAX_PER_ACTOR: usize = 64;
/// Messages in flight that may carry a sending end; beyond, the oldest one's reach is unknown.
const MAX_CARRIED: usize = 1 << 16;
/// Actors remembered as receiving from one channel.
const MAX_RECEIVERS: usize = 4;

/// How an actor may have come to hold a channel's sending end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// It created the channel.
    Created,
    /// It received a message that `from` sent on `channel` at `site`, after `from` may have
    /// held it.
    Message {
        /// The channel the message went through.
        channel: ChannelId,
        /// Who sent the message.
        from: Actor,
        /// Where it was sent.
        site: SiteId,
    },
    /// It was spawned by `parent`, which may have moved the sending end into it.
    Spawned {
        /// The spawning actor.
        parent: Actor,
    },
    /// A message that may carry it was sent by `from` on `channel` at `site` and not received
    /// yet; this actor receives from that channel.
    InFlight {
        /// The channel the message waits in.
        channel: ChannelId,
        /// Who sent the message.
        from: Actor,
        /// Where it was sent.
        site: SiteId,
    },
}

/// What is known of one live channel's sending end.
#[derive(Debug)]
struct Reach {
    kind: ChannelKind,
    /// Possible holders, each with how it may have got it, in the order they were reached.
    holders: Vec<(Actor, Via)>,
    /// No bound cut the reach short.
    complete: bool,
    /// Who received from this channel (its receiving end's holders), at most a few.
    receivers: Vec<Actor>,
}

/// A message in flight that may carry sending ends.
#[derive(Debug)]
struct Carried {
    on: ChannelId,
    from: Actor,
    site: SiteId,
    ends: Vec<ChannelId>,
}

/// Who may hold each live channel's sending end; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct SenderReach {
    channels: HashMap<ChannelId, Reach>,
    /// Live channels in creation order, for forgetting the oldest.
    created: VecDeque<ChannelId>,
    /// For each actor, the live channels whose sending end it may hold.
    held_by: HashMap<Actor, Vec<ChannelId>>,
    carried: HashMap<u64, Carried>,
    /// Carried messages in sending order, for forgetting the oldest.
    carried_order: VecDeque<u64>,
}

/// The possible holders of a channel's sending end at the end of the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holders {
    /// What sort of channel it is.
    pub(crate) kind: ChannelKind,
    /// Each possible holder, with how it may have got it.
    pub(crate) holders: Vec<(Actor, Via)>,
}

impl SenderReach {
    /// Follows one event (of the kinds the deadlock detector asks for).
    pub(crate) fn on_event(&mut self, event: &Event) {
        let actor = Actor::of(event);
        match event.kind {
            EventKind::ChannelCreated { channel, kind } => self.created(actor, channel, kind),
            EventKind::Send { channel, message, site } => self.sent(actor, channel, message, site),
            EventKind::Receive { channel, message, .. } => self.received(actor, channel, message),
            EventKind::TaskSpawned { task, .. } => self.spawned(actor, Actor::Task(task)),
            EventKind::ThreadSpawned { thread, .. } => self.spawned(actor, Actor::Thread(thread)),
            _ => {}
        }
    }

    fn created(&mut self, actor: Actor, channel: ChannelId, kind: ChannelKind) {
        if self.channels.len() >= MAX_CHANNELS {
            while let Some(oldest) = self.created.pop_front() {
                if self.channels.remove(&oldest).is_some() {
                    break;
                }
            }
        }
        let reach = Reach {
            kind,
            holders: vec![(actor, Via::Created)],
            complete: true,
            receivers: Vec::new(),
        };
        self.channels.insert(channel, reach);
        self.created.push_back(channel);
        if self.created.len() > 2 * MAX_CHANNELS {
            // Most are gone (their values sent): keep the order of those still followed.
            let channels = &self.channels;
            self.created.retain(|c| channels.contains_key(c));
        }
        self.hold(actor, channel);
    }

    /// `actor` may now hold `channel`'s sending end.
    fn hold(&mut self, actor: Actor, channel: ChannelId) {
        let list = self.held_by.entry(actor).or_default();
        list.retain(|c| *c != channel);
        list.push(channel);
        if list.len() > MAX_PER_ACTOR {
            let dropped = list.remove(0);
            if let Some(reach) = self.channels.get_mut(&dropped) {
                reach.complete = false;
            }
        }
    }

    fn sent(&mut self, actor: Actor, channel: ChannelId, message: u64, site: SiteId) {
        if self.channels.get(&channel).is_some_and(|r| r.kind == ChannelKind::Oneshot) {
            // Its one value is sent: nobody waits for it any more.
            self.channels.remove(&channel);
        }
        let Some(list) = self.held_by.get_mut(&actor) else {
            return;
        };
        let channels = &self.channels;
        list.retain(|c| channels.contains_key(c));
        let ends: Vec<ChannelId> = list.iter().copied().filter(|c| *c != channel).collect();
        if ends.is_empty() {
            return;
        }
        if self.carried.len() >= MAX_CARRIED {
            while let Some(oldest) = self.carried_order.pop_front() {
                if let Some(lost) = self.carried.remove(&oldest) {
                    for c in lost.ends {
                        if let Some(reach) = self.channels.get_mut(&c) {
                            reach.complete = false;
                        }
                    }
                    break;
                }
            }
        }
        self.carried.insert(message, Carried { on: channel, from: actor, site, ends });
        self.carried_order.push_back(message);
        if self.carried_order.len() > 2 * MAX_CARRIED {
            // Most were received: keep the order of those still in flight.
            let carried = &self.carried;
            self.carried_order.retain(|m| carried.contains_key(m));
        }
    }

    fn received(&mut self, actor: Actor, channel: ChannelId, message: u64) {
        if let Some(reach) = self.channels.get_mut(&channel) {
            if !reach.receivers.contains(&actor) && reach.receivers.len() < MAX_RECEIVERS {
                reach.receivers.push(actor);
            }
        }
        let Some(carried) = self.carried.remove(&message) else {
            return;
        };
        let via = Via::Message { channel: carried.on, from: carried.from, site: carried.site };
        for c in carried.ends {
            if self.reach(c, actor, via) {
                self.hold(actor, c);
            }
        }
    }

    fn spawned(&mut self, parent: Actor, child: Actor) {
        let Some(list) = self.held_by.get(&parent) else {
            return;
        };
        let list: Vec<ChannelId> = list.clone();
        for c in list {
            if self.reach(c, child, Via::Spawned { parent }) {
                self.hold(child, c);
            }
        }
    }

    /// Adds `actor` to the possible holders of `channel`; whether the channel is live.
    fn reach(&mut self, channel: ChannelId, actor: Actor, via: Via) -> bool {
        let Some(reach) = self.channels.get_mut(&channel) else {
            return false;
        };
        if !reach.holders.iter().any(|(a, _)| *a == actor) {
            if reach.holders.len() >= MAX_HOLDERS {
                reach.complete = false;
            } else {
                reach.holders.push((actor, via));
            }
        }
        true
    }

    /// Who may hold `channel`'s sending end at the end of the trace, if that is known: the
    /// channel was created in the trace, its value (for a one-shot channel) was not sent, and
    /// no bound cut its reach short. Messages still in flight reach their channel's
    /// receivers; one with no known receiver makes the reach unknown.
    pub(crate) fn holders(&self, channel: ChannelId) -> Option<Holders> {
        let reach = self.channels.get(&channel).filter(|r| r.complete)?;
        let mut holders = reach.holders.clone();
        for carried in self.carried.values().filter(|c| c.ends.contains(&channel)) {
            let receivers = &self.channels.get(&carried.on)?.receivers;
            if receivers.is_empty() {
                return None;
            }
            for &receiver in receivers {
                if !holders.iter().any(|(a, _)| *a == receiver) {
                    let via = Via::InFlight {
                        channel: carried.on,
                        from: carried.from,
                        site: carried.site,
                    };
                    holders.push((receiver, via));
                }
            }
        }
        Some(Holders { kind: reach.kind, holders })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hindsight_recorder::format::{TaskId, ThreadId};

    fn event(task: u32, kind: EventKind) -> Event {
        Event { time_ns: 0, thread: ThreadId(0), task: Some(TaskId(task)), kind }
    }

    fn actors(holders: &Holders) -> Vec<Actor> {
        holders.holders.iter().map(|(a, _)| *a).collect()
    }

    const SITE: SiteId = SiteId(0);

    #[test]
    fn a_reply_sender_follows_its_message_and_stays_with_whoever_has_its_queue() {
        let (reply, mailbox_b, mailbox_a) = (ChannelId(0), ChannelId(1), ChannelId(2));
        let mut reach = SenderReach::default();
        for e in [
            event(1, EventKind::ChannelCreated { channel: mailbox_a, kind: ChannelKind::Queue }),
            event(2, EventKind::ChannelCreated { channel: mailbox_b, kind: ChannelKind::Queue }),
            // Task 1 received from its mailbox once: it is the mailbox's receiver.
            event(1, EventKind::Receive { channel: mailbox_a, message: 1, site: SITE }),
            event(1, EventKind::ChannelCreated { channel: reply, kind: ChannelKind::Oneshot }),
            event(1, EventKind::Send { channel: mailbox_b, message: 2, site: SITE }),
            event(2, EventKind::Receive { channel: mailbox_b, message: 2, site: SITE }),
            // Task 2 sends to task 1's mailbox, which task 1 never reads again.
            event(2, EventKind::Send { channel: mailbox_a, message: 3, site: SITE }),
        ] {
            reach.on_event(&e);
        }
        let holders = reach.holders(reply).expect("known");
        assert_eq!(holders.kind, ChannelKind::Oneshot);
        assert_eq!(actors(&holders), [Actor::Task(TaskId(1)), Actor::Task(TaskId(2))]);
        assert_eq!(
            holders.holders[1].1,
            Via::Message { channel: mailbox_b, from: Actor::Task(TaskId(1)), site: SITE }
        );
        // Once the reply is sent, nobody waits for it.
        reach.on_event(&event(2, EventKind::Send { channel: reply, message: 4, site: SITE }));
        assert_eq!(reach.holders(reply), None);
    }

    #[test]
    fn a_message_in_flight_on_a_channel_nobody_received_from_makes_the_reach_unknown() {
        let (reply, queue) = (ChannelId(0), ChannelId(1));
        let mut reach = SenderReach::default();
        reach.on_event(&event(
            1,
            EventKind::ChannelCreated { channel: queue, kind: ChannelKind::Queue },
        ));
        reach.on_event(&event(
            1,
            EventKind::ChannelCreated { channel: reply, kind: ChannelKind::Oneshot },
        ));
        reach.on_event(&event(1, EventKind::Send { channel: queue, message: 1, site: SITE }));
        assert_eq!(reach.holders(reply), None);
        // A channel created before the trace began is unknown too.
        assert_eq!(reach.holders(ChannelId(9)), None);
    }

    #[test]
    fn following_many_short_lived_replies_keeps_memory_bounded() {
        let (queue, task) = (ChannelId(0), 1);
        let mut reach = SenderReach::default();
        reach.on_event(&event(
            task,
            EventKind::ChannelCreated { channel: queue, kind: ChannelKind::Queue },
        ));
        reach.on_event(&event(task, EventKind::Receive { channel: queue, message: 0, site: SITE }));
        for n in 1..300_000u32 {
            let reply = ChannelId(n);
            let message = u64::from(n);
            for kind in [
                EventKind::ChannelCreated { channel: reply, kind: ChannelKind::Oneshot },
                EventKind::Send { channel: queue, message, site: SITE },
                EventKind::Receive { channel: queue, message, site: SITE },
                EventKind::Send { channel: reply, message: message + 1_000_000, site: SITE },
                EventKind::Receive { channel: reply, message: message + 1_000_000, site: SITE },
            ] {
                reach.on_event(&event(task, kind));
            }
        }
        assert!(reach.channels.len() <= MAX_CHANNELS);
        assert!(reach.created.len() <= 2 * MAX_CHANNELS + 1);
        assert!(reach.carried.len() <= MAX_CARRIED);
        assert!(reach.carried_order.len() <= 2 * MAX_CARRIED + 1);
        assert!(reach.held_by.values().all(|list| list.len() <= MAX_PER_ACTOR));
        assert!(reach.holders(queue).is_some(), "the queue is still followed");
    }

    #[test]
    fn a_spawned_task_may_take_its_parents_senders_and_the_bound_makes_the_reach_unknown() {
        let queue = ChannelId(0);
        let mut reach = SenderReach::default();
        reach.on_event(&event(
            0,
            EventKind::ChannelCreated { channel: queue, kind: ChannelKind::Queue },
        ));
        reach.on_event(&event(0, EventKind::TaskSpawned { task: TaskId(1), site: None }));
        let holders = reach.holders(queue).expect("known");
        assert_eq!(actors(&holders), [Actor::Task(TaskId(0)), Actor::Task(TaskId(1))]);
        for task in 2..=MAX_HOLDERS as u32 {
            reach.on_event(&event(0, EventKind::TaskSpawned { task: TaskId(task), site: None }));
        }
        assert_eq!(reach.holders(queue), None, "more possible holders than followed");
    }
}
