//! Blocked readers and the order they are served in.
//!
//! Redis serves blocked clients synchronously, right after the command whose
//! writes could let them go on (`handleClientsBlockedOnKeys`): for each key
//! signalled ready, in signal order, the clients blocked on it, in the order
//! they blocked. This module does the same under the server's lock, so which
//! reader gets an entry never depends on task scheduling: a seed decides it.
//! A served reader's reply goes to its connection through a oneshot channel.

use std::collections::{BTreeMap, BTreeSet};

use tokio::sync::oneshot;

use super::cmd::{BlockedRead, serve_blocked};
use super::keyspace::{Keyspace, Signal};
use super::reply::Reply;

/// One blocked connection.
#[derive(Debug)]
struct Waiter {
    read: BlockedRead,
    reply: oneshot::Sender<Reply>,
}

/// Every blocked reader, by ticket (the order they blocked in).
#[derive(Debug, Default)]
pub struct Blocked {
    waiters: BTreeMap<u64, Waiter>,
    next_ticket: u64,
}

impl Blocked {
    /// Registers a read; its reply will come through the returned receiver.
    pub fn block(&mut self, read: BlockedRead) -> (u64, oneshot::Receiver<Reply>) {
        let (sender, receiver) = oneshot::channel();
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.waiters.insert(ticket, Waiter { read, reply: sender });
        (ticket, receiver)
    }

    /// Forgets a read (timeout, disconnect); false if it was already served.
    pub fn cancel(&mut self, ticket: u64) -> bool {
        self.waiters.remove(&ticket).is_some()
    }

    /// Number of blocked readers (`INFO clients`' `blocked_clients`).
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    /// Serves readers the signals left in `keyspace` let go on, until no new
    /// signal is left (serving one reader never signals, but the loop is Redis's).
    pub fn serve(&mut self, keyspace: &mut Keyspace, now_ms: u64) {
        let selected = keyspace.selected();
        loop {
            let signals = keyspace.take_signals();
            if signals.is_empty() {
                break;
            }
            let mut seen = BTreeSet::new();
            let keys: Vec<(usize, Vec<u8>)> = signals.into_iter().flat_map(|signal| self.keys_of(signal)).collect();
            for (db, key) in keys {
                if seen.insert((db, key.clone())) {
                    self.serve_key(keyspace, db, &key, now_ms);
                }
            }
        }
        keyspace.select(selected);
    }

    /// The keys a signal names: itself, or every key blocked on in a database.
    fn keys_of(&self, signal: Signal) -> Vec<(usize, Vec<u8>)> {
        match signal {
            Signal::Key(db, key) => vec![(db, key)],
            Signal::Db(db) => {
                let keys: BTreeSet<&Vec<u8>> = self
                    .waiters
                    .values()
                    .filter(|waiter| waiter.read.db == db)
                    .flat_map(|waiter| waiter.read.keys.iter().map(|(key, _)| key))
                    .collect();
                keys.into_iter().map(|key| (db, key.clone())).collect()
            }
        }
    }

    fn serve_key(&mut self, keyspace: &mut Keyspace, db: usize, key: &[u8], now_ms: u64) {
        let tickets: Vec<u64> = self
            .waiters
            .iter()
            .filter(|(_, waiter)| waiter.read.db == db && waiter.read.keys.iter().any(|(name, _)| name == key))
            .map(|(ticket, _)| *ticket)
            .collect();
        keyspace.select(db);
        for ticket in tickets {
            let Some(waiter) = self.waiters.get(&ticket) else { continue };
            let Some(reply) = serve_blocked(keyspace, &waiter.read, key, now_ms) else { continue };
            if let Some(waiter) = self.waiters.remove(&ticket) {
                // A connection that went away has dropped its receiver; its
                // reply has nowhere to go, as in Redis when a client vanishes.
                let _gone = waiter.reply.send(reply);
            }
        }
    }
}
