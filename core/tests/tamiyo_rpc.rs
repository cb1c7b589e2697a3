//! Tamiyo over TCP: signed round trips on real loopback sockets, bad frames refused
//! and counted, reconnects, and hostile bytes that never panic the frame reader or
//! the server.

#[path = "../../tests/support/runtime.rs"]
mod runtime;

mod tamiyo_support;

use std::future::Future;
use std::io;
use std::time::Duration;

use esper_core::leyline::signing::sign;
use esper_core::leyline::{
    AdaptationCommand, BusEnvelope, MessagePriority, SigningKey, SystemStatePacket, Verifier, VerifyPolicy,
};
use esper_core::net::framed::{read_frame, write_frame};
use esper_core::net::{Connector, Listener, TokioConnector};
use esper_core::tamiyo::rpc::REFUSAL_ATTRIBUTE;
use esper_core::tamiyo::{
    BlueprintCatalog, PolicyConfig, RpcConfig, RpcCounters, RpcStats, TamiyoClient, TamiyoConfig, serve_tamiyo,
};
use esper_core::tolaria::ports::{Outbox, PortError, TamiyoPort};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tamiyo_support::{NOW_MS, TestService, flat, packet, service, service_seeded, service_with};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Every test finishes well within this, or fails instead of hanging.
const TEST_BOUND: Duration = Duration::from_secs(20);

fn key() -> SigningKey {
    SigningKey::new(b"tamiyo-rpc-test-secret".to_vec()).expect("non-empty")
}

fn config() -> RpcConfig {
    RpcConfig::new(key())
}

fn client(port: u16, key: SigningKey) -> TamiyoClient<TokioConnector> {
    TamiyoClient::new(TokioConnector, "127.0.0.1", port, RpcConfig::new(key), || NOW_MS, ChaCha8Rng::seed_from_u64(99))
}

async fn bind(port: u16) -> (impl Listener, u16) {
    let listener = TokioConnector.bind(port).await.expect("bind loopback");
    let port = listener.local_addr().expect("bound address").port();
    (listener, port)
}

/// Runs `work` against `service` served on `listener`; the server must outlive it.
async fn with_server<L: Listener, T>(
    listener: L,
    service: &mut TestService,
    stats: &RpcStats,
    work: impl Future<Output = T>,
) -> T {
    let mut telemetry = Outbox::default();
    let served = serve_tamiyo(listener, service, config(), stats.clone(), &mut telemetry);
    let bounded = tokio::time::timeout(TEST_BOUND, async {
        tokio::select! {
            error = served => panic!("the server stopped: {error}"),
            out = work => out,
        }
    });
    bounded.await.expect("finished within the test bound")
}

/// Lets the server loop run until `done` holds for its counters (bounded).
async fn until(stats: &RpcStats, done: impl Fn(&RpcCounters) -> bool) {
    for _ in 0..10_000 {
        if done(&stats.snapshot()) {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("server counters never got there: {:?}", stats.snapshot());
}

/// The parts of a command that do not depend on who drew the nonces.
fn decision(command: &AdaptationCommand) -> (i32, String, String) {
    (command.command_type, format!("{:?}", command.payload), format!("{:?}", command.annotations))
}

#[tokio::test]
async fn signed_round_trip_over_loopback_matches_the_in_process_service() {
    let (listener, port) = bind(0).await;
    let (mut served, stats) = (service(), RpcStats::default());
    let mut client = client(port, key());
    let packets = flat(0..40);
    let remote = with_server(listener, &mut served, &stats, async {
        let mut commands = Vec::new();
        for packet in &packets {
            commands.push(client.evaluate_step(packet).await.expect("Tamiyo answers"));
        }
        commands
    })
    .await;
    let mut local = service();
    for (packet, remote) in packets.iter().zip(&remote) {
        assert_eq!(decision(remote), decision(&local.evaluate(packet).await), "step {}", packet.global_step);
        assert_eq!(remote.issued_by, "tamiyo");
    }
    assert_eq!(served.sink().reports().len(), 40, "the served service wrote a report per command");
    let counters = stats.snapshot();
    assert_eq!((counters.connections_accepted, counters.requests_answered, counters.bad_frames()), (1, 40, 0));
    assert_eq!((client.counters().connects, client.verify_counters().accepted), (1, 40));
}

/// Each answered step's telemetry leaves through the telemetry port (Oona in the
/// control loop, Weatherlight's hub in `esper up`): nothing stays in the
/// service's outbox, nothing is dropped.
#[tokio::test]
async fn each_answered_steps_telemetry_reaches_the_telemetry_port() {
    let (listener, port) = bind(0).await;
    let (mut served, stats, mut telemetry) = (service(), RpcStats::default(), Outbox::default());
    let mut client = client(port, key());
    let serving = serve_tamiyo(listener, &mut served, config(), stats.clone(), &mut telemetry);
    let consulted = async {
        for packet in &flat(0..5) {
            client.evaluate_step(packet).await.expect("Tamiyo answers");
        }
        // The publisher runs beside the serving loop; let it catch up.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(TEST_BOUND, async {
        tokio::select! {
            error = serving => panic!("the server stopped: {error}"),
            () = consulted => {}
        }
    })
    .await
    .expect("finished within the test bound");
    let published: Vec<&str> = telemetry.telemetry.iter().map(|packet| packet.packet_id.as_str()).collect();
    for step in 0..5 {
        let id = format!("tamiyo-s{step}");
        assert!(published.iter().any(|published| published.starts_with(&id)), "{id} not in {published:?}");
    }
    assert!(telemetry.telemetry.iter().all(|packet| packet.source_subsystem == "tamiyo"));
    assert!(telemetry.telemetry.iter().any(|packet| packet.metric("tamiyo.inference.latency_ms").is_some()));
    assert!(served.drain_telemetry().is_empty(), "the server drained the service's outbox");
    let counters = stats.snapshot();
    assert_eq!((counters.telemetry_dropped, counters.telemetry_failed), (0, 0));
}

/// Sends `payload` as one frame on a fresh raw connection; returns the answer frame
/// (if any) and the connection.
async fn raw_exchange(port: u16, payload: &[u8]) -> (Option<Vec<u8>>, TcpStream) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    write_frame(&mut stream, payload, u32::MAX).await.expect("send");
    let answer = read_frame(&mut stream, 1 << 20).await.expect("answer or close");
    (answer, stream)
}

/// Whether the server closed `stream` (clean EOF).
async fn closed(mut stream: TcpStream) -> bool {
    matches!(read_frame(&mut stream, 1 << 20).await, Ok(None))
}

fn refusal_reason(frame: &[u8]) -> String {
    let mut verifier = Verifier::new(key(), VerifyPolicy::default());
    let envelope = verifier.verify(frame, NOW_MS).expect("refusals are signed by the server");
    envelope.attributes.get(REFUSAL_ATTRIBUTE).cloned().expect("a refusal, not a command")
}

fn signed_packet(packet: &SystemStatePacket, key: &SigningKey, nonce_seed: u64) -> Vec<u8> {
    let envelope = BusEnvelope::wrap(packet, MessagePriority::High);
    sign(key, &envelope, NOW_MS, &mut ChaCha8Rng::seed_from_u64(nonce_seed))
}

#[tokio::test]
async fn bad_frames_are_refused_counted_and_closed() {
    let (listener, port) = bind(0).await;
    let (mut served, stats) = (service(), RpcStats::default());
    with_server(listener, &mut served, &stats, async {
        let (answer, stream) = raw_exchange(port, b"not a leyline frame").await;
        let reason = refusal_reason(&answer.expect("a garbage frame is answered"));
        assert!(reason.contains("not a Leyline frame"), "{reason}");
        assert!(closed(stream).await, "and the connection closed");

        let wrong_key = SigningKey::new(b"someone else".to_vec()).expect("key");
        let (answer, _) = raw_exchange(port, &signed_packet(&packet(0, 1.0), &wrong_key, 1)).await;
        assert!(refusal_reason(&answer.expect("answered")).contains("signature does not match"));

        let good = signed_packet(&packet(0, 1.0), &key(), 2);
        let (answer, mut kept) = raw_exchange(port, &good).await;
        let mut verifier = Verifier::new(key(), VerifyPolicy::default());
        let command = verifier.verify(&answer.expect("answered"), NOW_MS).expect("signed").open::<AdaptationCommand>();
        assert!(command.is_ok(), "a good frame gets a command");
        let (answer, _) = raw_exchange(port, &good).await;
        assert!(refusal_reason(&answer.expect("answered")).contains("replay"), "same nonce on another connection");
        let again = signed_packet(&packet(1, 1.0), &key(), 4);
        write_frame(&mut kept, &again, u32::MAX).await.expect("the good connection stayed open");
        assert!(read_frame(&mut kept, 1 << 20).await.expect("answer").is_some());

        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        stream.write_all(&u32::MAX.to_be_bytes()).await.expect("send prefix");
        assert!(matches!(read_frame(&mut stream, 1 << 20).await, Ok(None)), "oversized: closed, unanswered");
        until(&stats, |c| c.framing_errors == 1).await;
    })
    .await;
    let counters = stats.snapshot();
    assert_eq!((counters.requests_refused, counters.framing_errors, counters.requests_answered), (3, 1, 2));
    assert_eq!(counters.bad_frames(), 4);
    let verify = counters.verify;
    assert_eq!((verify.rejected_malformed, verify.rejected_bad_mac, verify.rejected_replayed), (1, 1, 1));
    assert_eq!(verify.accepted, 2, "the two good frames");
    assert_eq!(served.counters().evaluations, 2, "refused frames never reach the service");
}

#[tokio::test]
async fn client_with_the_wrong_secret_gets_an_error_not_a_command() {
    let (listener, port) = bind(0).await;
    let (mut served, stats) = (service(), RpcStats::default());
    let mut client = client(port, SigningKey::new(b"someone else".to_vec()).expect("key"));
    let result = with_server(listener, &mut served, &stats, client.evaluate_step(&packet(0, 1.0))).await;
    let Err(PortError::Unavailable { service: "tamiyo", reason }) = result else { panic!("{result:?}") };
    assert!(reason.contains("signature does not match"), "{reason}");
    assert_eq!(stats.snapshot().requests_refused, 1);
}

#[tokio::test]
async fn client_reconnects_after_the_server_restarts() {
    let (listener, port) = bind(0).await;
    let stats = RpcStats::default();
    let mut client = client(port, key());
    let mut first = service();
    with_server(listener, &mut first, &stats, async {
        client.evaluate_step(&packet(0, 1.0)).await.expect("first server answers");
    })
    .await;
    // The first server is gone; its port is free again for the second. A restarted
    // host draws from a fresh RNG stream: reusing the first one's nonces would be
    // refused as replays by the client, which is exactly what the verifier is for.
    let (listener, _) = bind(port).await;
    let mut second = service_seeded(8);
    let command = with_server(listener, &mut second, &stats, client.evaluate_step(&packet(1, 1.0))).await;
    assert!(command.expect("answered after a reconnect").command_id.starts_with("tamiyo-s1-"));
    let counters = client.counters();
    assert_eq!((counters.connects, counters.retries, counters.failures), (2, 1, 0));
}

#[tokio::test]
async fn an_abandoned_call_drops_its_connection_so_late_answers_cannot_leak() {
    let catalog = BlueprintCatalog::karn();
    let policy = PolicyConfig { trend_window: 1, ..PolicyConfig::default() };
    let config = TamiyoConfig {
        step_timeout: Duration::from_secs(5),
        metadata_timeout: Duration::from_secs(2),
        policy,
        ..TamiyoConfig::default()
    };
    let mut served = service_with(config, catalog.clone());
    let (listener, port) = bind(0).await;
    let stats = RpcStats::default();
    let mut client = client(port, key());
    with_server(listener, &mut served, &stats, async {
        client.evaluate_step(&packet(0, 0.7)).await.expect("quick answer");
        // Step 1 germinates; its blueprint lookup takes 300 ms. Tolaria gives up at 50 ms.
        catalog.delay().set(Duration::from_millis(300));
        let abandoned = tokio::time::timeout(Duration::from_millis(50), client.evaluate_step(&packet(1, 0.7))).await;
        assert!(abandoned.is_err(), "the call was abandoned");
        catalog.delay().set(Duration::ZERO);
        let command = client.evaluate_step(&packet(2, 0.7)).await.expect("answered");
        assert!(command.command_id.starts_with("tamiyo-s2-"), "the answer to step 2, not the late one: {command:?}");
    })
    .await;
    assert_eq!(client.counters().connects, 2, "the abandoned connection was not reused");
}

/// A listener over in-memory duplex streams, for feeding the server exact bytes.
struct DuplexListener(mpsc::UnboundedReceiver<DuplexStream>);

impl Listener for DuplexListener {
    type Stream = DuplexStream;

    async fn accept(&mut self) -> io::Result<(DuplexStream, String)> {
        match self.0.recv().await {
            Some(stream) => Ok((stream, "duplex".to_owned())),
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        Ok(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

/// Writes `bytes` to a served Tamiyo, closes the write side, and returns every frame
/// it answered with.
async fn feed_server(bytes: &[u8], stats: &RpcStats) -> Vec<Vec<u8>> {
    let (sender, receiver) = mpsc::unbounded_channel();
    let (mut ours, theirs) = tokio::io::duplex(1 << 16);
    sender.send(theirs).expect("listener alive");
    let mut served = service();
    with_server(DuplexListener(receiver), &mut served, stats, async {
        // The server may close before reading everything; that is its right.
        let _ = ours.write_all(bytes).await;
        let _ = ours.shutdown().await;
        let mut answers = Vec::new();
        while let Ok(Some(frame)) = read_frame(&mut ours, 1 << 20).await {
            answers.push(frame);
        }
        until(stats, |c| c.connections_accepted == 1 && (bytes.is_empty() || c.bad_frames() > 0)).await;
        answers
    })
    .await
}

fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    let good = signed_packet(&packet(3, 0.9), &key(), 3);
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        (0u32..700, prop::collection::vec(any::<u8>(), 0..600)).prop_map(|(declared, mut body)| {
            let mut bytes = declared.to_be_bytes().to_vec();
            bytes.append(&mut body);
            bytes
        }),
        (0..good.len() * 8).prop_map(move |bit| {
            let mut frame = good.clone();
            frame[bit / 8] ^= 1 << (bit % 8);
            let mut bytes = (frame.len() as u32).to_be_bytes().to_vec();
            bytes.extend_from_slice(&frame);
            bytes
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever the bytes, the frame reader returns frames or a typed error — never a
    /// panic — and never claims more bytes than it was given.
    #[test]
    fn frame_reader_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048), max in 0u32..1024) {
        let consumed = runtime::real().block_on(async {
            let mut reader = bytes.as_slice();
            let mut consumed = 0;
            for _ in 0..=bytes.len() {
                match read_frame(&mut reader, max).await {
                    Ok(Some(frame)) => {
                        assert!(frame.len() <= max as usize);
                        consumed += 4 + frame.len();
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            consumed
        });
        prop_assert!(consumed <= bytes.len());
    }

    /// Whatever a peer sends, the server neither panics nor answers with a command:
    /// non-empty garbage costs exactly one counted bad frame (then the connection is
    /// closed), and every answer it does send is a signed refusal.
    #[test]
    fn server_refuses_hostile_bytes_without_panicking(bytes in hostile_bytes()) {
        let stats = RpcStats::default();
        let answers = runtime::real().block_on(feed_server(&bytes, &stats));
        let counters = stats.snapshot();
        prop_assert_eq!(counters.requests_answered, 0);
        prop_assert_eq!(counters.bad_frames(), u64::from(!bytes.is_empty()));
        prop_assert!(answers.len() <= 1);
        for answer in &answers {
            refusal_reason(answer);
        }
    }
}

/// 2,000 idle sockets cannot lock Tolaria out: at the cap each new connection
/// evicts the one idle longest (counted), so Tolaria's client is still answered.
/// (With 16 slots and no eviction, the first 16 idle sockets held them for good.)
#[tokio::test]
async fn two_thousand_idle_connections_are_capped_and_tolaria_is_still_answered() {
    let (listener, port) = bind(0).await;
    let (mut served, stats) = (service(), RpcStats::default());
    let mut client = client(port, key());
    let answered = with_server(listener, &mut served, &stats, async {
        let mut idle = Vec::new();
        for _ in 0..2_000 {
            idle.push(TcpStream::connect(("127.0.0.1", port)).await.expect("connect"));
        }
        until(&stats, |c| c.connections_accepted == 2_000).await;
        let command = client.evaluate_step(&packet(1, 0.5)).await;
        drop(idle);
        command
    })
    .await;
    answered.expect("Tolaria is answered");
    let counters = stats.snapshot();
    assert_eq!(counters.connections_accepted, 2_001);
    assert_eq!(counters.connections_evicted, 2_001 - 16, "every connection past the 16 slots evicted an idle one");
    assert_eq!((counters.connections_refused, counters.requests_answered), (0, 1));
}

/// A peer that sends part of a frame and then nothing is closed at the read
/// timeout (counted); a well-behaved client is unaffected.
#[tokio::test(start_paused = true)]
async fn a_connection_that_stalls_mid_frame_is_closed_at_the_read_timeout() {
    let (sender, receiver) = mpsc::unbounded_channel();
    let (mut slow, theirs) = tokio::io::duplex(1 << 16);
    sender.send(theirs).expect("listener alive");
    let (mut served, stats) = (service(), RpcStats::default());
    let mut config = config();
    config.read_timeout = Duration::from_secs(5);
    let mut telemetry = Outbox::default();
    let serving = serve_tamiyo(DuplexListener(receiver), &mut served, config, stats.clone(), &mut telemetry);
    let stalled = async {
        slow.write_all(&[0, 0, 1]).await.expect("three bytes of a length prefix");
        tokio::time::sleep(Duration::from_millis(4_900)).await;
        assert_eq!(stats.snapshot().connections_timed_out, 0, "not before the timeout");
        tokio::time::sleep(Duration::from_millis(200)).await;
        until(&stats, |c| c.connections_timed_out == 1).await;
    };
    tokio::select! {
        error = serving => panic!("the server stopped: {error}"),
        () = stalled => {}
    }
}
