//! Malformed requests: arbitrary bytes never panic the simulated server, and it
//! answers them as Redis 7.0 does, byte for byte, closing where Redis closes.
//!
//! Each case opens a fresh connection, sends the bytes, half-closes and reads
//! until the server closes, so the output is everything the server ever sends on
//! that connection: replies to the well-formed prefix, the protocol error, and
//! nothing after it.

mod support;

use std::cell::RefCell;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use esper_sim::redis::ServerConfig;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use support::{RawClient, RealRedis, send_raw, spawn_simulated};

/// Panics anywhere in this process (the simulated server's tasks included).
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// Command words the simulated server implements with replies that carry no
/// server identity or timing, plus an unknown one and Redis's HTTP guard.
fn command_word() -> impl Strategy<Value = &'static [u8]> {
    prop_oneof![
        Just(&b"PING"[..]),
        Just(&b"ping"[..]),
        Just(&b"GET"[..]),
        Just(&b"SET"[..]),
        Just(&b"DEL"[..]),
        Just(&b"EXISTS"[..]),
        Just(&b"TYPE"[..]),
        Just(&b"XLEN"[..]),
        Just(&b"XADD"[..]),
        Just(&b"XRANGE"[..]),
        Just(&b"NOPE"[..]),
        Just(&b"post"[..]),
    ]
}

/// Arguments, including the bytes that trouble parsers.
fn word() -> impl Strategy<Value = Vec<u8>> {
    let fixed: &[&[u8]] = &[
        b"k",
        b"s1",
        b"1-1",
        b"-",
        b"+",
        b"f",
        b"v",
        b"",
        b"a b",
        b"x\"y",
        b"'",
        b"\\x41",
        b"\0",
        b"\r",
        b"\n",
        b"\xff\xfe",
        b"EX",
        b"NX",
        b"\t",
    ];
    prop_oneof![4 => prop::sample::select(fixed).prop_map(<[u8]>::to_vec), 1 => prop::collection::vec(any::<u8>(), 0..6)]
}

fn command() -> impl Strategy<Value = Vec<Vec<u8>>> {
    (command_word(), prop::collection::vec(word(), 0..4)).prop_map(|(name, mut args)| {
        args.insert(0, name.to_vec());
        args
    })
}

fn multibulk(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// An inline line: words joined by a separator, some wrapped in quotes.
fn inline() -> impl Strategy<Value = Vec<u8>> {
    let separator = prop_oneof![Just(&b" "[..]), Just(&b"  "[..]), Just(&b"\t"[..]), Just(&b"\x0b"[..])];
    let quoting = prop_oneof![3 => Just(None), 1 => Just(Some(b'"')), 1 => Just(Some(b'\''))];
    (command(), separator, prop::collection::vec(quoting, 4), prop_oneof![Just(&b"\r\n"[..]), Just(&b"\n"[..])])
        .prop_map(|(words, separator, quotes, end)| {
            let mut line = Vec::new();
            for (index, word) in words.iter().enumerate() {
                if index > 0 {
                    line.extend_from_slice(separator);
                }
                let quote = quotes.get(index).copied().flatten();
                line.extend(quote);
                line.extend_from_slice(word);
                line.extend(quote);
            }
            line.extend_from_slice(end);
            line
        })
}

/// A header with a count that may be malformed.
fn header() -> impl Strategy<Value = Vec<u8>> {
    let counts: &[&str] = &["-1", "0", "1", "2", "3", "x", "", "+1", "01", "-0", " 1", "2147483647", "2147483648"];
    (
        prop_oneof![Just(b'*'), Just(b'$')],
        prop::sample::select(counts),
        prop_oneof![Just("\r\n"), Just("\r"), Just("\n")],
    )
        .prop_map(|(marker, count, end)| {
            let mut out = vec![marker];
            out.extend_from_slice(count.as_bytes());
            out.extend_from_slice(end.as_bytes());
            out
        })
}

fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => command().prop_map(|args| multibulk(&args)),
        2 => inline(),
        3 => header(),
        2 => prop::sample::select(&[b'\r', b'\n', b'\0', b'"', b'\'', b'\\', b'$', b'*', b' ', b':'][..]).prop_map(|byte| vec![byte]),
        1 => prop::collection::vec(any::<u8>(), 1..16),
    ]
}

/// Arbitrary bytes, or a stream of RESP-shaped pieces cut at an arbitrary point.
fn malformed() -> impl Strategy<Value = Vec<u8>> {
    let shaped = (prop::collection::vec(piece(), 1..8), any::<prop::sample::Index>()).prop_map(|(pieces, cut)| {
        let bytes = pieces.concat();
        let keep = if bytes.is_empty() { 0 } else { cut.index(bytes.len() + 1) };
        bytes.get(..keep).map(<[u8]>::to_vec).unwrap_or(bytes)
    });
    prop_oneof![1 => prop::collection::vec(any::<u8>(), 0..256), 3 => shaped]
}

fn runner(cases: u32) -> TestRunner {
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

/// The replies in `output`, in order; the decoder must consume all of it.
fn replies(output: &[u8]) -> Result<Vec<Vec<u8>>, TestCaseError> {
    let mut rest = output;
    let mut replies = Vec::new();
    while !rest.is_empty() {
        let decoded = redis_protocol::resp2::decode::decode_range(rest)
            .map_err(|error| TestCaseError::fail(format!("{error:?}")))?;
        let Some((_, used)) = decoded else {
            return Err(TestCaseError::fail(format!("truncated reply in {output:?}")));
        };
        replies.push(rest.get(..used).unwrap_or_default().to_vec());
        rest = rest.get(used..).unwrap_or_default();
    }
    Ok(replies)
}

#[test]
fn arbitrary_bytes_never_panic_the_simulated_server_and_a_protocol_error_ends_the_connection() {
    count_panics();
    let port = spawn_simulated(ServerConfig::default());
    let (protocol_errors, cases) = (AtomicUsize::new(0), 3_000);
    let result = runner(cases).run(&malformed(), |input| {
        let replies = replies(&send_raw(port, &input))?;
        let first_protocol_error = replies.iter().position(|reply| reply.starts_with(b"-ERR Protocol error:"));
        if let Some(at) = first_protocol_error {
            protocol_errors.fetch_add(1, Ordering::SeqCst);
            prop_assert_eq!(at + 1, replies.len(), "nothing may follow a protocol error: {:?}", replies);
        }
        prop_assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the server panicked on {:?}", input);
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
    let mut client = RawClient::connect(port);
    assert_eq!(client.call(&["PING".to_owned()]), b"+PONG\r\n", "the server still serves after {cases} cases");
    let protocol_errors = protocol_errors.load(Ordering::SeqCst);
    eprintln!("{cases} malformed inputs, {protocol_errors} answered with a protocol error, 0 panics");
    assert!(protocol_errors > 100, "the generator must reach protocol errors often: {protocol_errors}");
}

/// Inputs past the 64 KiB line bound, which a generated case cannot reach.
fn oversized_inputs() -> Vec<Vec<u8>> {
    let long = vec![b'a'; 70 * 1024];
    let with_prefix = |prefix: &[u8]| [prefix, &long].concat();
    vec![
        long.clone(),
        with_prefix(b"*"),
        with_prefix(b"*1\r\n$"),
        with_prefix(b"PING\r\n"),
        with_prefix(b"*1\r\n$70000\r\n"),
    ]
}

#[test]
fn malformed_input_is_answered_byte_for_byte_as_real_redis_does() {
    let Some(redis) = RealRedis::start("redis_malformed") else { return };
    count_panics();
    let simulated = spawn_simulated(ServerConfig::default());
    let admins = RefCell::new((RawClient::connect(redis.port), RawClient::connect(simulated)));
    let compare = |input: &[u8]| -> Result<(), TestCaseError> {
        let flush = ["FLUSHALL".to_owned()];
        let (real_admin, simulated_admin) = &mut *admins.borrow_mut();
        prop_assert_eq!(real_admin.call(&flush), simulated_admin.call(&flush));
        let real = send_raw(redis.port, input);
        let simulated = send_raw(simulated, input);
        prop_assert_eq!(
            String::from_utf8_lossy(&simulated),
            String::from_utf8_lossy(&real),
            "input {:?}",
            String::from_utf8_lossy(input)
        );
        prop_assert_eq!(simulated, real, "bytes differ outside UTF-8");
        Ok(())
    };
    for input in oversized_inputs() {
        if let Err(error) = compare(&input) {
            panic!("oversized input of {} bytes: {error}", input.len());
        }
    }
    let cases = 3_000;
    let result = runner(cases).run(&malformed(), |input| compare(&input));
    if let Err(error) = result {
        panic!("the simulated server answers malformed input differently from redis-server: {error}");
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0);
    eprintln!("{cases} generated malformed inputs + {} oversized: 0 mismatches", oversized_inputs().len());
}
