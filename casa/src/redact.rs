//! Secret redaction: credentials in the argv of traced processes never reach casa's outputs.
//!
//! Applied to every event as it enters the pipeline (before sessions, logs, spans and console
//! lines see it), on by default (`--no-redact` turns it off). A secret is replaced by
//! `[REDACTED len=N sha256=XXXXXXXX]`: its length and the first 8 hex digits of its SHA-256,
//! so two records can still be matched to the same secret without revealing it. Recognised:
//!
//! * option values: `--password=…`, `--passwd`, `--token`, `--api-key`, `--apikey`,
//!   `--secret`, `--client-secret`, `--access-key`, `--secret-key`, `--auth` (any case, also
//!   as the argument after the option: `--token XYZ`);
//! * environment-style assignments whose name ends in `PASSWORD`, `PASSWD`, `TOKEN`, `SECRET`,
//!   `API_KEY`, `APIKEY`, `ACCESS_KEY` or `PRIVATE_KEY` (`GITHUB_TOKEN=…`);
//! * `Authorization: Bearer …` / `Basic …` and `Bearer …` anywhere in an argument;
//! * credentials in URLs (`https://user:SECRET@host`);
//! * well-known key shapes anywhere: AWS (`AKIA…`, `ASIA…`), GitHub (`ghp_…`, `gho_…`, `ghu_…`,
//!   `ghs_…`, `ghr_…`, `github_pat_…`), OpenAI-style (`sk-…`), Slack (`xox[abprs]-…`).
//!
//! Recordings written by `casa record` keep the kernel's bytes as they were (they are the
//! replayable evidence); replaying one redacts as the daemon does.

use sha2::{Digest, Sha256};

use crate::event::{Bytes, Detail, Event};

const OPTION_NAMES: [&str; 11] = [
    "password",
    "passwd",
    "token",
    "api-key",
    "apikey",
    "secret",
    "client-secret",
    "access-key",
    "secret-key",
    "auth",
    "api_key",
];

const ENV_SUFFIXES: [&str; 8] = [
    "PASSWORD",
    "PASSWD",
    "TOKEN",
    "SECRET",
    "API_KEY",
    "APIKEY",
    "ACCESS_KEY",
    "PRIVATE_KEY",
];

/// The marker that replaces `secret`.
pub fn marker(secret: &[u8]) -> Vec<u8> {
    let digest = Sha256::digest(secret);
    let prefix: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("[REDACTED len={} sha256={prefix}]", secret.len()).into_bytes()
}

fn is_option_name(name: &[u8]) -> bool {
    let name = name.trim_ascii_start();
    let Some(bare) = name.strip_prefix(b"--").or_else(|| name.strip_prefix(b"-")) else {
        return false;
    };
    OPTION_NAMES
        .iter()
        .any(|n| bare.eq_ignore_ascii_case(n.as_bytes()))
}

fn is_env_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
        && ENV_SUFFIXES.iter().any(|s| name.ends_with(s.as_bytes()))
}

fn token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'/' | b'+' | b'=' | b'~')
}

/// A known key shape: prefix, minimum length of what follows, the characters it may contain.
type KeyShape = (&'static [u8], usize, fn(u8) -> bool);

/// The key shapes recognised anywhere in an argument.
fn key_shapes() -> [KeyShape; 11] {
    fn alnum(c: u8) -> bool {
        c.is_ascii_alphanumeric()
    }
    fn upper_alnum(c: u8) -> bool {
        c.is_ascii_uppercase() || c.is_ascii_digit()
    }
    fn word(c: u8) -> bool {
        c.is_ascii_alphanumeric() || c == b'_'
    }
    fn dashed(c: u8) -> bool {
        c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
    }
    [
        (b"AKIA", 16, upper_alnum),
        (b"ASIA", 16, upper_alnum),
        (b"ghp_", 30, alnum),
        (b"gho_", 30, alnum),
        (b"ghu_", 30, alnum),
        (b"ghs_", 30, alnum),
        (b"ghr_", 30, alnum),
        (b"github_pat_", 20, word),
        (b"sk-", 20, dashed),
        (b"xoxb-", 10, dashed),
        (b"xoxp-", 10, dashed),
    ]
}

/// Redact one argument; `None` when nothing in it is secret.
pub fn redact_arg(arg: &[u8]) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(arg.len());
    let mut changed = false;
    // `--password=VALUE` / `NAME_TOKEN=VALUE`: the value is the secret.
    if let Some(eq) = arg.iter().position(|&c| c == b'=') {
        let (name, value) = (&arg[..eq], &arg[eq + 1..]);
        if !value.is_empty() && (is_option_name(name) || is_env_name(name)) {
            out.extend_from_slice(&arg[..=eq]);
            out.extend_from_slice(&marker(value));
            return Some(out);
        }
    }
    let mut i = 0;
    while i < arg.len() {
        let rest = &arg[i..];
        // `Bearer X` / `Basic X` (Authorization headers).
        let scheme = [
            b"Bearer ".as_slice(),
            b"Basic ".as_slice(),
            b"bearer ".as_slice(),
        ]
        .into_iter()
        .find(|p| rest.starts_with(p));
        if let Some(p) = scheme {
            let start = p.len();
            let len = rest[start..].iter().take_while(|&&c| token_char(c)).count();
            if len >= 8 {
                out.extend_from_slice(p);
                out.extend_from_slice(&marker(&rest[start..start + len]));
                i += start + len;
                changed = true;
                continue;
            }
        }
        // `scheme://user:SECRET@host`.
        if rest.starts_with(b"://") {
            let auth_end = rest[3..]
                .iter()
                .position(|&c| c == b'@' || c == b'/' || c == b' ');
            if let Some(end) = auth_end
                && rest.get(3 + end) == Some(&b'@')
            {
                let auth = &rest[3..3 + end];
                if let Some(colon) = auth.iter().position(|&c| c == b':') {
                    out.extend_from_slice(b"://");
                    out.extend_from_slice(&auth[..=colon]);
                    out.extend_from_slice(&marker(&auth[colon + 1..]));
                    i += 3 + end;
                    changed = true;
                    continue;
                }
            }
        }
        // Known key shapes, at a token boundary.
        let boundary =
            i == 0 || !token_char(arg[i - 1]) || arg[i - 1] == b'=' || arg[i - 1] == b'/';
        if boundary
            && let Some((prefix, min, ok)) = key_shapes()
                .into_iter()
                .find(|(p, _, _)| rest.starts_with(p))
        {
            let len = rest[prefix.len()..].iter().take_while(|&&c| ok(c)).count();
            if len >= min {
                let total = prefix.len() + len;
                out.extend_from_slice(&marker(&rest[..total]));
                i += total;
                changed = true;
                continue;
            }
        }
        out.push(arg[i]);
        i += 1;
    }
    changed.then_some(out)
}

/// Redact an argv in place (option values given as the next argument included); returns
/// whether anything changed.
pub fn redact_argv(argv: &mut [Bytes]) -> bool {
    let mut changed = false;
    let mut next_is_secret = false;
    for a in argv.iter_mut() {
        if next_is_secret && !a.as_bytes().starts_with(b"-") && !a.as_bytes().is_empty() {
            a.0 = marker(a.as_bytes());
            changed = true;
            next_is_secret = false;
            continue;
        }
        next_is_secret = is_option_name(a.as_bytes()) && !a.as_bytes().contains(&b'=');
        if let Some(r) = redact_arg(a.as_bytes()) {
            a.0 = r;
            changed = true;
        }
    }
    changed
}

/// Redact the secrets of an event (exec argv; the exec path and open paths are kept).
pub fn redact_event(ev: &mut Event) -> bool {
    match &mut ev.detail {
        Detail::Exec(x) => redact_argv(&mut x.argv),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        String::from_utf8(redact_arg(s.as_bytes()).unwrap_or_else(|| s.as_bytes().to_vec()))
            .unwrap()
    }

    #[test]
    fn options_env_and_headers() {
        assert!(r("--password=hunter2").starts_with("--password=[REDACTED len=7 sha256="));
        assert!(r("--API-KEY=abc").starts_with("--API-KEY=[REDACTED len=3"));
        assert!(r("GITHUB_TOKEN=xyz123").starts_with("GITHUB_TOKEN=[REDACTED len=6"));
        assert_eq!(r("PATH=/usr/bin"), "PATH=/usr/bin");
        let h = r("Authorization: Bearer abcdefgh12345678");
        assert!(
            h.starts_with("Authorization: Bearer [REDACTED len=16"),
            "{h}"
        );
        let u = r("https://bob:s3cr3tpass@example.com/x");
        assert!(
            u.starts_with("https://bob:[REDACTED len=10") && u.ends_with("@example.com/x"),
            "{u}"
        );
        assert_eq!(r("https://example.com/x"), "https://example.com/x");
    }

    #[test]
    fn key_shapes_anywhere() {
        let k = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX1234";
        let out = r(&format!("curl -H 'x: {k}' http://h"));
        assert!(
            !out.contains(k) && out.contains("[REDACTED len=36"),
            "{out}"
        );
        assert!(!r("AKIAIOSFODNN7EXAMPLE").contains("AKIAIOSFODNN7EXAMPLE"));
        let gh = format!("ghp_{}", "a".repeat(36));
        assert!(!r(&gh).contains(&gh));
        assert_eq!(
            r("task-1234"),
            "task-1234",
            "short sk-like words are not keys"
        );
        assert_eq!(r("desk-lamp"), "desk-lamp");
    }

    #[test]
    fn separate_argument_values_and_markers_are_stable() {
        let mut argv: Vec<Bytes> = ["tool", "--token", "TOPSECRET", "--verbose", "x"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        assert!(redact_argv(&mut argv));
        assert_eq!(argv[1], Bytes::from("--token"));
        assert_eq!(argv[2].0, marker(b"TOPSECRET"));
        assert_eq!(argv[3], Bytes::from("--verbose"));
        assert_eq!(marker(b"TOPSECRET"), marker(b"TOPSECRET"));
        assert_ne!(marker(b"TOPSECRET"), marker(b"TOPSECRET2"));
        let mut clean: Vec<Bytes> = ["ls", "-la", "/tmp"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        assert!(!redact_argv(&mut clean));
    }

    #[test]
    fn non_utf8_and_long_arguments_do_not_break_redaction() {
        let mut a = vec![0xffu8, 0xfe];
        a.extend_from_slice(b" --token=abc ");
        a.extend(std::iter::repeat_n(b'\x1b', 4000));
        let _ = redact_arg(&a);
        let mut b = b"x=".to_vec();
        b.extend_from_slice(&[0x80; 10]);
        assert_eq!(redact_arg(&b), None);
    }
}
