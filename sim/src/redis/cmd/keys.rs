//! `KEYS pattern`, and the glob matching KEYS and SCAN's MATCH share
//! (Redis's `stringmatchlen`: `*`, `?`, `[…]` with ranges and `^`, `\` escapes).

use super::{Ctx, Exec};
use crate::redis::reply::Reply;

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let keys = ctx.keyspace.keys(ctx.now_ms);
    Reply::Array(keys.into_iter().filter(|key| glob_match(&args[1], key)).map(Reply::Bulk).collect()).into()
}

/// Whether `text` matches the glob `pattern`.
pub(super) fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob_match(rest, text.get(skip..).unwrap_or_default())),
        Some((b'?', rest)) => text.split_first().is_some_and(|(_, text_rest)| glob_match(rest, text_rest)),
        Some((b'[', rest)) => {
            let Some((byte, text_rest)) = text.split_first() else { return false };
            let (matched, after) = class_match(rest, *byte);
            matched && glob_match(after, text_rest)
        }
        Some((b'\\', rest)) if !rest.is_empty() => literal(rest, text),
        Some(_) => literal(pattern, text),
    }
}

fn literal(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.split_first(), text.split_first()) {
        (Some((want, pattern_rest)), Some((got, text_rest))) => want == got && glob_match(pattern_rest, text_rest),
        _ => false,
    }
}

/// A `[…]` class (the `[` already consumed): whether `byte` is in it, and the
/// pattern after its `]` (or after the end, when unclosed, as Redis reads it).
fn class_match(class: &[u8], byte: u8) -> (bool, &[u8]) {
    let (negate, mut at) = if class.first() == Some(&b'^') { (true, 1) } else { (false, 0) };
    let mut matched = false;
    while let Some(&current) = class.get(at) {
        if current == b']' {
            return (matched != negate, class.get(at + 1..).unwrap_or_default());
        }
        if current == b'\\' && at + 1 < class.len() {
            at += 1;
            matched |= class.get(at) == Some(&byte);
        } else if class.get(at + 1) == Some(&b'-') && at + 2 < class.len() {
            let (low, high) = (current.min(class[at + 2]), current.max(class[at + 2]));
            matched |= (low..=high).contains(&byte);
            at += 2;
        } else {
            matched |= current == byte;
        }
        at += 1;
    }
    (matched != negate, &[])
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_like_redis() {
        assert!(glob_match(b"s*", b"s1"));
        assert!(glob_match(b"?1", b"s1"));
        assert!(glob_match(b"[a-s]1", b"s1"));
        assert!(!glob_match(b"[^s]1", b"s1"));
        assert!(glob_match(b"a\\*", b"a*"));
        assert!(!glob_match(b"s", b"s1"));
    }
}
