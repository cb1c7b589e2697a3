//! `CLIENT ID | SETNAME | GETNAME | INFO | LIST | SETINFO | HELP`: what client
//! libraries send on connect and what an operator looks at. `SETINFO` is
//! Redis 7.2's, accepted because newer clients send it unconditionally.

use super::{Ctx, Exec, Spec, help, is, sub_loading, syntax_error};
use crate::redis::reply::{ErrorText, Reply, err, ok};

pub(super) static SUBCOMMANDS: &[Spec] = &[
    sub_loading("id", 2, id),
    sub_loading("setname", 3, setname),
    sub_loading("getname", 2, getname),
    sub_loading("info", 2, info),
    sub_loading("list", -2, list),
    sub_loading("setinfo", 4, setinfo),
    sub_loading("help", 2, help_text),
];

fn setinfo(_ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    if is(&args[2], "LIB-NAME") || is(&args[2], "LIB-VER") {
        ok().into()
    } else {
        ErrorText::new("ERR Unrecognized option '").arg(&args[2]).text("'").reply().into()
    }
}

/// Redis's rule for client names: printable ASCII without spaces.
pub(super) fn valid_name(name: &[u8]) -> Result<(), Reply> {
    if name.iter().any(|byte| *byte <= b' ' || *byte > b'~') {
        return Err(err("ERR Client names cannot contain spaces, newlines or special characters."));
    }
    Ok(())
}

fn setname(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    match valid_name(&args[2]) {
        Ok(()) => {
            ctx.session.name = args[2].clone();
            ok().into()
        }
        Err(reply) => reply.into(),
    }
}

fn getname(ctx: &mut Ctx<'_>, _args: &[Vec<u8>]) -> Exec {
    if ctx.session.name.is_empty() { Reply::Nil.into() } else { Reply::Bulk(ctx.session.name.clone()).into() }
}

fn id(ctx: &mut Ctx<'_>, _args: &[Vec<u8>]) -> Exec {
    Reply::Int(i64::try_from(ctx.session.id).unwrap_or(i64::MAX)).into()
}

fn info(ctx: &mut Ctx<'_>, _args: &[Vec<u8>]) -> Exec {
    Reply::Bulk(line(ctx, ctx.session.id).into_bytes()).into()
}

/// `CLIENT LIST [TYPE normal] [ID id …]`: one line per connection, by id.
fn list(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let mut wanted: Option<Vec<u64>> = None;
    match &args[2..] {
        [] => {}
        [kind, value] if is(kind, "TYPE") && is(value, "NORMAL") => {}
        [kind, value] if is(kind, "TYPE") => {
            return ErrorText::new("ERR Unknown client type '").arg(value).text("'").reply().into();
        }
        [kind, ids @ ..] if is(kind, "ID") && !ids.is_empty() => {
            let parsed: Option<Vec<u64>> = ids.iter().map(|id| crate::redis::id::parse_u64(id)).collect();
            match parsed {
                Some(ids) => wanted = Some(ids),
                None => return err("ERR Invalid client ID").into(),
            }
        }
        _ => return syntax_error().into(),
    }
    let ids: Vec<u64> = ctx.server.clients.keys().copied().collect();
    let text: String = ids
        .into_iter()
        .filter(|id| wanted.as_ref().is_none_or(|wanted| wanted.contains(id)))
        .map(|id| line(ctx, id))
        .collect();
    Reply::Bulk(text.into_bytes()).into()
}

/// One `CLIENT LIST` line, with Redis's fields; what this server does not
/// track (file descriptors, buffer sizes) reads as Redis's idle values. Other
/// connections' names, databases and protocols are known as of their last command.
fn line(ctx: &Ctx<'_>, id: u64) -> String {
    let row = ctx.server.clients.get(&id).cloned().unwrap_or_default();
    let own = id == ctx.session.id;
    let age_s = ctx.now_ms.saturating_sub(row.connected_ms) / 1000;
    let idle_s = ctx.now_ms.saturating_sub(row.last_command_ms) / 1000;
    let (name, db, resp, multi, cmd) = if own {
        let multi = ctx.session.multi.as_ref().map_or(-1, |multi| i64::try_from(multi.queue.len()).unwrap_or(-1));
        let name = String::from_utf8_lossy(&ctx.session.name).into_owned();
        (name, ctx.session.db, ctx.session.resp, multi, ctx.session.last_command.clone())
    } else {
        (String::new(), 0, 2, -1, "NULL".to_owned())
    };
    let flags = if multi >= 0 { "x" } else { "N" };
    format!(
        "id={id} addr={addr} laddr= fd=0 name={name} age={age_s} idle={idle_s} flags={flags} db={db} sub=0 psub=0 \
         ssub=0 multi={multi} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 \
         events=r cmd={cmd} user=default redir=-1 resp={resp}\n",
        addr = row.addr,
    )
}

fn help_text(_ctx: &mut Ctx<'_>, _args: &[Vec<u8>]) -> Exec {
    help("CLIENT", HELP)
}

/// Redis 7.0's text, the subcommands this server lacks included (they answer
/// `ERR unknown subcommand`; see `docs/oona.md`).
const HELP: &[&str] = &[
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
];
