//! `esper redis` as a user meets it: the real `redis-cli` runs a session
//! against it, and its redis.conf limits (`--maxclients`, `--timeout`,
//! `--client-query-buffer-limit`) refuse what they should and count it in
//! `INFO stats`.

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "waiting on real servers over real sockets is bounded by wall-clock deadlines"
)]

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{RawClient, esper_binary, external, free_port, wait_until_listening};

/// `esper redis` on a free port with `flags`, killed on drop.
struct EsperRedis {
    child: Child,
    port: u16,
}

impl EsperRedis {
    fn start(flags: &[&str]) -> Self {
        let port = free_port();
        let child = Command::new(esper_binary())
            .args(["redis", "--port", &port.to_string()])
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("esper redis starts");
        wait_until_listening(port);
        Self { child, port }
    }

    /// An `INFO stats` counter, asked over a new connection.
    fn stat(&self, name: &str) -> u64 {
        stat(&mut RawClient::connect(self.port), name)
    }
}

/// An `INFO stats` counter, asked over `client`.
fn stat(client: &mut RawClient, name: &str) -> u64 {
    let info = client.call(&["INFO".to_owned(), "stats".to_owned()]);
    let text = String::from_utf8_lossy(&info);
    let prefix = format!("{name}:");
    text.lines().find_map(|line| line.strip_prefix(&prefix)).and_then(|value| value.trim().parse().ok()).unwrap_or(0)
}

impl Drop for EsperRedis {
    fn drop(&mut self) {
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
    }
}

#[test]
fn redis_cli_runs_a_session_with_select_multi_xadd_exec_and_xinfo_full() {
    // redis-cli comes with redis-server (Debian package redis-tools, a dependency).
    let Some(_) = external::require(external::Tool::Redis, "redis_cli") else { return };
    let server = EsperRedis::start(&[]);
    let session = "SELECT 3\nMULTI\nXADD s 1-1 field value\nXADD s 2-1 other thing\nEXEC\nXINFO STREAM s FULL\nDBSIZE\nSELECT 0\nDBSIZE\n";
    let mut cli = Command::new("redis-cli")
        .args(["-p", &server.port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli starts");
    cli.stdin.take().expect("stdin").write_all(session.as_bytes()).expect("session sent");
    let output = cli.wait_with_output().expect("redis-cli finishes");
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let expected_start = ["OK", "OK", "QUEUED", "QUEUED", "1-1", "2-1", "length", "2", "radix-tree-keys", "1"];
    assert_eq!(lines.get(..expected_start.len()), Some(&expected_start[..]), "redis-cli printed:\n{text}");
    for field in
        ["last-generated-id", "entries-added", "recorded-first-entry-id", "entries", "field", "value", "groups"]
    {
        assert!(lines.contains(&field), "XINFO STREAM FULL lacks {field}:\n{text}");
    }
    assert_eq!(lines.get(lines.len().saturating_sub(3)..), Some(&["1", "OK", "0"][..]), "redis-cli printed:\n{text}");
}

#[test]
fn maxclients_refuses_the_extra_connection_and_counts_it() {
    let server = EsperRedis::start(&["--maxclients", "2"]);
    let mut first = RawClient::connect(server.port);
    let mut second = TcpStream::connect((Ipv4Addr::LOCALHOST, server.port)).expect("connect");
    let mut third = TcpStream::connect((Ipv4Addr::LOCALHOST, server.port)).expect("connect");
    third.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut refused = Vec::new();
    third.read_to_end(&mut refused).expect("the third connection is answered and closed");
    assert_eq!(refused, b"-ERR max number of clients reached\r\n");
    second.write_all(b"PING\r\n").expect("send");
    drop((second, third));
    let deadline = Instant::now() + Duration::from_secs(5);
    while stat(&mut first, "rejected_connections") != 1 {
        assert!(Instant::now() < deadline, "rejected_connections never reached 1");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_client_past_the_query_buffer_limit_is_disconnected_and_counted() {
    let server = EsperRedis::start(&["--client-query-buffer-limit", "1kb"]);
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, server.port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let _sent = stream.write_all(&[b'a'; 4096]);
    let mut rest = Vec::new();
    let _closed = stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "Redis closes without a reply: {rest:?}");
    assert_eq!(server.stat("client_query_buffer_limit_disconnections"), 1);
}

#[test]
fn an_idle_client_is_disconnected_after_the_timeout_and_counted() {
    let server = EsperRedis::start(&["--timeout", "1"]);
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, server.port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let started = Instant::now();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("the server closes the idle connection");
    assert!(started.elapsed() >= Duration::from_millis(900), "closed after {:?}", started.elapsed());
    assert_eq!(server.stat("client_idle_timeout_disconnections"), 1);
}

#[test]
fn requirepass_is_enforced_through_the_flag() {
    let server = EsperRedis::start(&["--requirepass", "s3cret"]);
    let mut client = RawClient::connect(server.port);
    let words = |line: &str| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(client.call(&words("PING")), b"-NOAUTH Authentication required.\r\n");
    assert_eq!(client.call(&words("AUTH nope")), b"-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    assert_eq!(client.call(&words("AUTH s3cret")), b"+OK\r\n");
    assert_eq!(client.call(&words("PING")), b"+PONG\r\n");
    assert_eq!(stat(&mut client, "acl_access_denied_auth"), 1, "a new connection could not ask before AUTH");
}
