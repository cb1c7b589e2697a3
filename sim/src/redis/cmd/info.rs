//! `INFO [section …]`: the sections and fields clients and operators read.
//! `run_id` changes at every server start, which is how clients notice a
//! restart; `stats` counts what the connection limits refused.

use super::{Ctx, Exec, hello::VERSION};
use crate::redis::reply::Reply;

/// Sections in Redis's order; `true` when `INFO` without arguments shows it.
const SECTIONS: &[&str] = &["server", "clients", "memory", "persistence", "stats", "replication", "cpu", "keyspace"];

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let asked: Vec<String> = args[1..].iter().map(|arg| String::from_utf8_lossy(arg).to_ascii_lowercase()).collect();
    let all = asked.is_empty() || asked.iter().any(|name| matches!(name.as_str(), "all" | "everything" | "default"));
    let text: Vec<String> = SECTIONS
        .iter()
        .filter(|section| all || asked.iter().any(|name| name == *section))
        .map(|section| format!("# {}\r\n{}", title(section), body(ctx, section)))
        .collect();
    Reply::Bulk(text.join("\r\n").into_bytes()).into()
}

fn title(section: &str) -> String {
    let mut chars = section.chars();
    chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

fn body(ctx: &Ctx<'_>, section: &str) -> String {
    let server = &*ctx.server;
    let stats = &server.stats;
    match section {
        "server" => format!(
            "redis_version:{VERSION}\r\nredis_mode:standalone\r\nrun_id:{}\r\nesper_simulated:1\r\n",
            server.run_id
        ),
        "clients" => format!(
            "connected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\n",
            server.clients.len(),
            server.limits.max_clients,
            server.blocked_clients
        ),
        "memory" => "used_memory:0\r\nmaxmemory:0\r\n".to_owned(),
        "persistence" => "loading:0\r\naof_enabled:1\r\n".to_owned(),
        "stats" => format!(
            "total_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\n\
             client_query_buffer_limit_disconnections:{}\r\nclient_idle_timeout_disconnections:{}\r\n\
             acl_access_denied_auth:{}\r\n",
            stats.connections_received,
            stats.commands_processed,
            stats.rejected_connections,
            stats.query_buffer_limit_disconnections,
            stats.idle_timeout_disconnections,
            stats.auth_failures
        ),
        "replication" => "role:master\r\nconnected_slaves:0\r\n".to_owned(),
        "cpu" => "used_cpu_sys:0.000000\r\nused_cpu_user:0.000000\r\n".to_owned(),
        _ => ctx
            .keyspace
            .sizes()
            .into_iter()
            .map(|(db, keys, expires)| format!("db{db}:keys={keys},expires={expires},avg_ttl=0\r\n"))
            .collect(),
    }
}
