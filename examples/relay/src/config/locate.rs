//! Finding the file line and dotted key an error is about (toml spans for syntax errors, a
//! small scan of the text for errors found after parsing).

use std::path::Path;

use super::ConfigError;
use crate::outbound::OutboundError;

pub(super) fn syntax(e: &toml::de::Error, text: &str, file: &Path) -> ConfigError {
    let start = e.span().map_or(0, |s| s.start).min(text.len());
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    ConfigError::Syntax {
        file: file.to_owned(),
        line,
        column,
        key: key_at(text, start),
        message: e.message().trim().to_owned(),
    }
}

/// The dotted key path at byte offset `pos`: the current table header plus the key on that
/// line (or the header itself when the offset is inside it).
pub(super) fn key_at(text: &str, pos: usize) -> String {
    let mut table = String::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let end = offset + line.len();
        let t = line.trim();
        if let Some(h) = header(t) {
            table = h;
        }
        if pos < end || end == text.len() {
            if header(t).is_some() {
                return table;
            }
            let key = t
                .split_once('=')
                .map_or(t, |(k, _)| k)
                .trim()
                .trim_matches('"');
            return if table.is_empty() {
                key.into()
            } else if key.is_empty() {
                table
            } else {
                format!("{table}.{key}")
            };
        }
        offset = end;
    }
    table
}

fn header(t: &str) -> Option<String> {
    let t = t.split('#').next()?.trim();
    let inner = t.strip_prefix("[[").and_then(|r| r.strip_suffix("]]"));
    let inner = inner.or_else(|| t.strip_prefix('[').and_then(|r| r.strip_suffix(']')))?;
    Some(inner.trim().to_owned())
}

/// The line of a dotted key (`listener[1].hat`, `delivery.retry.initial_secs`): the n-th
/// `[[table]]` for indexed arrays; the table header when the key itself is absent.
pub(super) fn locate(text: &str, key: &str) -> Option<usize> {
    let (table, leaf) = match key.rsplit_once('.') {
        Some((t, l)) => (t, l),
        None => ("", key),
    };
    let (table, index) = match table.split_once('[') {
        Some((t, rest)) => (
            t.to_owned(),
            rest.trim_end_matches(']').parse::<usize>().ok(),
        ),
        None => (table.to_owned(), None),
    };
    let mut current = String::new();
    let mut seen = 0usize;
    let mut header_line = None;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(h) = header(t) {
            let matches = h == table
                && index.is_none_or(|i| {
                    seen += 1;
                    seen == i + 1
                });
            current = if matches { h } else { format!("\0{h}") };
            if matches {
                header_line = Some(n + 1);
            }
            continue;
        }
        if current == table
            && t.split_once('=')
                .is_some_and(|(k, _)| k.trim().trim_matches('"') == leaf)
        {
            return Some(n + 1);
        }
    }
    header_line
}

/// The `delivery.…` key an outbound error is about.
pub(super) fn outbound_key(e: &OutboundError) -> Option<String> {
    let text = e.to_string();
    let key = text.split([':', ' ']).next()?;
    key.starts_with("delivery.").then(|| key.to_owned())
}
