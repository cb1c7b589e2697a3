//! The simulated Redis server against a real `redis-server`, reply for reply.
//!
//! proptest generates command sequences over a small universe of keys, groups,
//! consumers and ids (so sequences collide: groups on missing keys, XADD onto
//! strings, acks of ids never delivered), replays each on both servers after a
//! FLUSHALL, and requires the raw reply bytes to be equal. The only normalisation
//! is of auto-generated stream ids (`XADD key *`): they come from each server's
//! clock, so each distinct one is replaced by its order of first appearance
//! (the sequence part too, since whether two XADDs share a millisecond is timing).
//!
//! Left out on purpose because the reply carries server timing: XPENDING's
//! extended form without a huge IDLE filter (idle times), XINFO (radix-tree
//! sizes), BLOCK (tested by the Oona integration tests).

mod support;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use esper_sim::redis::ServerConfig;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use support::{RawClient, RealRedis, spawn_simulated};

type Cmd = Vec<String>;

fn words(parts: &[&str]) -> Cmd {
    parts.iter().map(|part| (*part).to_owned()).collect()
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![4 => Just("s1"), 2 => Just("s2"), 1 => Just("k")].prop_map(str::to_owned)
}

/// Any key, including `a1`, the only key that gets auto-generated ids. Keeping
/// them on one key that is never deleted or overwritten makes them strictly
/// increasing on both servers, so numbering them by first appearance is exact.
fn any_key() -> impl Strategy<Value = String> {
    prop_oneof![6 => key(), 1 => Just("a1".to_owned())]
}

fn group() -> impl Strategy<Value = String> {
    prop_oneof![Just("g1"), Just("g2")].prop_map(str::to_owned)
}

fn consumer() -> impl Strategy<Value = String> {
    prop_oneof![Just("c1"), Just("c2")].prop_map(str::to_owned)
}

/// Explicit ids from a small grid, so they collide often.
fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (0_u64..4, 0_u64..3).prop_map(|(ms, seq)| format!("{ms}-{seq}")),
        1 => (0_u64..4).prop_map(|ms| ms.to_string()),
        1 => prop_oneof![Just("x"), Just("1-x"), Just("-1"), Just("")].prop_map(str::to_owned),
    ]
}

fn bound() -> impl Strategy<Value = String> {
    prop_oneof![2 => Just("-".to_owned()), 2 => Just("+".to_owned()), 3 => id(), 1 => id().prop_map(|id| format!("({id}"))]
}

fn xadd() -> impl Strategy<Value = Cmd> {
    let new_id = prop_oneof![3 => id(), 2 => Just("*".to_owned()), 1 => (0_u64..4).prop_map(|ms| format!("{ms}-*"))];
    let trim = prop_oneof![
        3 => Just(Vec::new()),
        1 => (prop_oneof![Just("MAXLEN"), Just("MINID")], prop_oneof![Just(""), Just("="), Just("~")], 0_u64..4)
            .prop_map(|(kind, op, n)| {
                let threshold = if kind == "MINID" { format!("{n}-0") } else { n.to_string() };
                [kind.to_owned(), op.to_owned(), threshold].into_iter().filter(|word| !word.is_empty()).collect()
            }),
    ];
    (any_key(), any::<bool>(), trim, new_id, prop::collection::vec(prop_oneof![Just("f"), Just("v"), Just("x")], 1..5))
        .prop_map(|(key, nomk, trim, id, fields)| {
            let key = if id == "*" { "a1".to_owned() } else { key };
            let mut cmd = words(&["XADD", &key]);
            if nomk {
                cmd.push("NOMKSTREAM".to_owned());
            }
            cmd.extend(trim);
            cmd.push(id);
            cmd.extend(fields.into_iter().map(str::to_owned));
            cmd
        })
}

fn ranges() -> impl Strategy<Value = Cmd> {
    (prop_oneof![Just("XRANGE"), Just("XREVRANGE")], any_key(), bound(), bound(), prop::option::of(-1_i64..4)).prop_map(
        |(name, key, a, b, count)| {
            let mut cmd = vec![name.to_owned(), key, a, b];
            if let Some(count) = count {
                cmd.extend(["COUNT".to_owned(), count.to_string()]);
            }
            cmd
        },
    )
}

fn groups() -> impl Strategy<Value = Cmd> {
    let start = prop_oneof![Just("$".to_owned()), Just("0".to_owned()), id()];
    prop_oneof![
        (any_key(), group(), start.clone(), any::<bool>()).prop_map(|(k, g, s, mk)| {
            let mut cmd = words(&["XGROUP", "CREATE", &k, &g, &s]);
            if mk {
                cmd.push("MKSTREAM".to_owned());
            }
            cmd
        }),
        (any_key(), group()).prop_map(|(k, g)| words(&["XGROUP", "DESTROY", &k, &g])),
        (any_key(), group(), consumer()).prop_map(|(k, g, c)| words(&["XGROUP", "CREATECONSUMER", &k, &g, &c])),
        (any_key(), group(), consumer()).prop_map(|(k, g, c)| words(&["XGROUP", "DELCONSUMER", &k, &g, &c])),
        (any_key(), group(), start).prop_map(|(k, g, s)| words(&["XGROUP", "SETID", &k, &g, &s])),
    ]
}

fn reads() -> impl Strategy<Value = Cmd> {
    let count = prop::option::of(0_i64..3);
    let group_read = (
        group(),
        consumer(),
        count.clone(),
        any::<bool>(),
        any_key(),
        prop_oneof![3 => Just(">".to_owned()), 1 => id(), 1 => Just("0".to_owned())],
    )
        .prop_map(|(g, c, count, noack, k, id)| {
            let mut cmd = words(&["XREADGROUP", "GROUP", &g, &c]);
            if let Some(count) = count {
                cmd.extend(["COUNT".to_owned(), count.to_string()]);
            }
            if noack {
                cmd.push("NOACK".to_owned());
            }
            cmd.extend(["STREAMS".to_owned(), k, id]);
            cmd
        });
    let plain_read =
        (count, any_key(), prop_oneof![Just("$".to_owned()), Just("0".to_owned()), id()]).prop_map(|(count, k, id)| {
            let mut cmd = words(&["XREAD"]);
            if let Some(count) = count {
                cmd.extend(["COUNT".to_owned(), count.to_string()]);
            }
            cmd.extend(["STREAMS".to_owned(), k, id]);
            cmd
        });
    prop_oneof![3 => group_read, 1 => plain_read]
}

fn pel() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        (any_key(), group(), prop::collection::vec(id(), 1..3)).prop_map(|(k, g, ids)| {
            let mut cmd = words(&["XACK", &k, &g]);
            cmd.extend(ids);
            cmd
        }),
        (any_key(), group()).prop_map(|(k, g)| words(&["XPENDING", &k, &g])),
        (any_key(), group()).prop_map(|(k, g)| words(&["XPENDING", &k, &g, "IDLE", "100000000", "-", "+", "10"])),
        (any_key(), group(), consumer(), prop::collection::vec(id(), 1..3), any::<bool>()).prop_map(
            |(k, g, c, ids, just)| {
                let mut cmd = words(&["XCLAIM", &k, &g, &c, "0"]);
                cmd.extend(ids);
                if just {
                    cmd.push("JUSTID".to_owned());
                }
                cmd
            }
        ),
        (any_key(), group(), consumer(), bound(), prop::option::of(1_i64..3), any::<bool>()).prop_map(
            |(k, g, c, start, count, just)| {
                let mut cmd = words(&["XAUTOCLAIM", &k, &g, &c, "0", &start]);
                if let Some(count) = count {
                    cmd.extend(["COUNT".to_owned(), count.to_string()]);
                }
                if just {
                    cmd.push("JUSTID".to_owned());
                }
                cmd
            }
        ),
    ]
}

fn misc() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        any_key().prop_map(|k| words(&["XLEN", &k])),
        (any_key(), id()).prop_map(|(k, id)| words(&["XDEL", &k, &id])),
        (any_key(), prop_oneof![Just("MAXLEN"), Just("MINID")], prop_oneof![Just("="), Just("~")], 0_u64..4).prop_map(
            |(k, kind, op, n)| words(&[
                "XTRIM",
                &k,
                kind,
                op,
                &if kind == "MINID" { format!("{n}-0") } else { n.to_string() }
            ])
        ),
        key().prop_map(|k| words(&["DEL", &k])),
        (key(), key()).prop_map(|(a, b)| words(&["EXISTS", &a, &b])),
        any_key().prop_map(|k| words(&["TYPE", &k])),
        key().prop_map(|k| words(&["GET", &k])),
        (key(), prop_oneof![Just(""), Just("NX"), Just("XX"), Just("EX")]).prop_map(|(k, opt)| match opt {
            "" => words(&["SET", &k, "v"]),
            "EX" => words(&["SET", &k, "v", "EX", "100"]),
            opt => words(&["SET", &k, "v", opt]),
        }),
        key().prop_map(|k| words(&["EXPIRE", &k, "100"])),
        key().prop_map(|k| words(&["TTL", &k])),
        Just(words(&["PING"])),
        Just(words(&["XLEN"])),
        Just(words(&["XGROUP", "NOPE", "s1"])),
        Just(words(&["NOPE", "a", "b"])),
        Just(words(&["XADD", "s1", "1-1", "f"])),
    ]
}

fn command() -> impl Strategy<Value = Cmd> {
    prop_oneof![5 => xadd(), 2 => ranges(), 3 => groups(), 4 => reads(), 3 => pel(), 3 => misc()]
}

/// Replaces each distinct auto-generated id (13+ digit milliseconds) in a reply
/// by its order of first appearance; everything else is kept byte for byte.
fn normalise(reply: &[u8], seen: &mut BTreeMap<String, usize>) -> String {
    let text = String::from_utf8_lossy(reply);
    let lines: Vec<&str> = text.split("\r\n").collect();
    let mut out = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        let is_auto = line.split_once('-').is_some_and(|(ms, seq)| {
            ms.len() >= 13 && ms.bytes().all(|b| b.is_ascii_digit()) && seq.bytes().all(|b| b.is_ascii_digit())
        });
        if is_auto {
            let next = seen.len();
            let ordinal = *seen.entry((*line).to_owned()).or_insert(next);
            if index > 0 && lines[index - 1].starts_with('$') {
                out.pop();
                out.push("$<auto>".to_owned());
            }
            out.push(format!("<auto-id #{ordinal}>"));
        } else {
            out.push((*line).to_owned());
        }
    }
    out.join("\r\n")
}

/// `HELLO`'s reply with the connection id (which differs between servers) masked.
fn mask_client_id(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    let mut lines: Vec<String> = text.split("\r\n").map(str::to_owned).collect();
    if let Some(at) = lines.iter().position(|line| line == "id") {
        if let Some(value) = lines.get_mut(at + 1) {
            *value = ":<id>".to_owned();
        }
    }
    lines.join("\r\n")
}

/// The planted mismatch of the shrinking demonstration: a harness-side bug switch
/// that corrupts the simulated server's XLEN replies on their way to the
/// comparison (any non-zero count gains one), so the server itself stays correct.
fn planted_xlen_off_by_one(command: &Cmd, reply: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8_lossy(&reply);
    let count = text.strip_prefix(':').and_then(|rest| rest.trim_end().parse::<u64>().ok());
    match count {
        Some(count) if command[0] == "XLEN" && count > 0 => format!(":{}\r\n", count + 1).into_bytes(),
        _ => reply,
    }
}

/// What the harness does to the simulated server's replies before comparing.
type Tamper = fn(&Cmd, Vec<u8>) -> Vec<u8>;

/// Both servers and a connection to each.
struct Pair {
    real: RawClient,
    simulated: RawClient,
    tamper: Option<Tamper>,
}

impl Pair {
    fn new(real_port: u16, simulated_port: u16, tamper: Option<Tamper>) -> Self {
        Self { real: RawClient::connect(real_port), simulated: RawClient::connect(simulated_port), tamper }
    }

    /// Runs `case` on both; the first differing reply is the error.
    fn replay(&mut self, case: &Case) -> Result<(), TestCaseError> {
        let flush = words(&["FLUSHALL"]);
        prop_assert_eq!(self.real.call(&flush), b"+OK\r\n".to_vec());
        prop_assert_eq!(self.simulated.call(&flush), b"+OK\r\n".to_vec());
        let hello = words(&["HELLO", &case.resp.to_string()]);
        let (real, simulated) = (self.real.call(&hello), self.simulated.call(&hello));
        prop_assert_eq!(mask_client_id(&simulated), mask_client_id(&real), "HELLO {}", case.resp);
        let (mut real_ids, mut simulated_ids) = (BTreeMap::new(), BTreeMap::new());
        for (step, command) in case.commands.iter().enumerate() {
            let real = normalise(&self.real.call(command), &mut real_ids);
            let mut reply = self.simulated.call(command);
            if let Some(tamper) = self.tamper {
                reply = tamper(command, reply);
            }
            let simulated = normalise(&reply, &mut simulated_ids);
            prop_assert_eq!(&simulated, &real, "step {} {:?} of {:?}", step, command, case);
        }
        Ok(())
    }
}

fn runner(cases: u32) -> TestRunner {
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 10_000, ..Config::default() };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

/// One generated case: the protocol version (RESP2 or RESP3) and the commands.
#[derive(Debug, Clone)]
struct Case {
    resp: u8,
    commands: Vec<Cmd>,
}

fn cases() -> impl Strategy<Value = Case> {
    (prop_oneof![3 => Just(2_u8), 1 => Just(3_u8)], prop::collection::vec(command(), 1..16))
        .prop_map(|(resp, commands)| Case { resp, commands })
}

#[test]
fn two_thousand_generated_sequences_match_real_redis_byte_for_byte() {
    let Some(redis) = RealRedis::start("redis_differential") else { return };
    let pair = RefCell::new(Pair::new(redis.port, spawn_simulated(ServerConfig::default()), None));
    let (commands, resp3) = (Cell::new(0_usize), Cell::new(0_usize));
    let result = runner(2_000).run(&cases(), |case| {
        commands.set(commands.get() + case.commands.len());
        resp3.set(resp3.get() + usize::from(case.resp == 3));
        pair.borrow_mut().replay(&case)
    });
    let (commands, resp3) = (commands.get(), resp3.get());
    if let Err(error) = result {
        panic!("the simulated server differs from redis-server: {error}");
    }
    eprintln!("2000 sequences ({resp3} over RESP3), {commands} commands, 0 mismatches");
    assert!(commands >= 2_000, "every sequence has at least one command");
    assert!(resp3 > 0 && resp3 < 2_000, "both protocols were exercised: {resp3} of 2000 over RESP3");
}

#[test]
fn a_planted_mismatch_is_caught_and_shrinks_to_at_most_three_commands() {
    let Some(redis) = RealRedis::start("redis_differential") else { return };
    let simulated = spawn_simulated(ServerConfig::default());
    let pair = RefCell::new(Pair::new(redis.port, simulated, Some(planted_xlen_off_by_one)));
    let result = runner(2_000).run(&cases(), |case| pair.borrow_mut().replay(&case));
    let Err(TestError::Fail(reason, minimal)) = result else {
        panic!("the planted XLEN mismatch went unnoticed: {result:?}");
    };
    let commands = &minimal.commands;
    eprintln!("planted mismatch shrank to {} command(s): {commands:?} ({reason})", commands.len());
    assert!(commands.len() <= 3, "shrinking left {} commands: {commands:?}", commands.len());
    assert!(commands.iter().any(|command| command[0] == "XLEN"), "the minimal case must exercise XLEN: {commands:?}");
}
