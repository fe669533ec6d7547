//! A small JSON locator: finds where a value (`rules[3].expr`, `thresholds.alert`) starts in
//! the source text, so semantic errors can say `path:line:col` like syntax errors do.
//!
//! The text has already been parsed successfully by serde_json when this runs, but the scanner
//! never assumes it: on anything unexpected it stops and reports the deepest value it found.

use super::error::Location;

/// The source text of a rules (or fixture) file, with the name used in messages.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Source<'a> {
    pub path: &'a str,
    pub text: &'a str,
}

enum Seg<'p> {
    Key(&'p str),
    Index(usize),
}

/// `rules[3].expr` → `[Key(rules), Index(3), Key(expr)]`. Malformed pieces are dropped.
fn segments(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Seg::Key(key));
        }
        while let Some(stripped) = rest.strip_prefix('[') {
            let Some(end) = stripped.find(']') else { break };
            if let Ok(i) = stripped[..end].parse() {
                out.push(Seg::Index(i));
            }
            rest = &stripped[end + 1..];
        }
    }
    out
}

struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    /// At `"`: moves past the closing quote and returns the raw contents.
    fn string(&mut self) -> Option<&'a str> {
        if self.peek() != Some(b'"') {
            return None;
        }
        let start = self.pos + 1;
        let mut i = start;
        while i < self.b.len() {
            match self.b[i] {
                b'\\' => i += 2,
                b'"' => {
                    self.pos = i + 1;
                    return self.text.get(start..i);
                }
                _ => i += 1,
            }
        }
        None
    }

    fn key(&mut self) -> Option<String> {
        let raw = self.string()?;
        if raw.contains('\\') {
            serde_json::from_str(&format!("\"{raw}\"")).ok()
        } else {
            Some(raw.to_owned())
        }
    }

    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.pos += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
            }
            _ => {
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n')
                ) {
                    self.pos += 1;
                }
                Some(())
            }
        }
    }

    /// Inside an object (just past `{`): positions at the value of `key`.
    fn member(&mut self, key: &str) -> Option<()> {
        loop {
            self.ws();
            if self.peek()? == b'}' {
                return None;
            }
            let k = self.key()?;
            self.ws();
            if self.peek()? != b':' {
                return None;
            }
            self.pos += 1;
            self.ws();
            if k == key {
                return Some(());
            }
            self.skip_value()?;
            self.ws();
            match self.peek()? {
                b',' => self.pos += 1,
                _ => return None,
            }
        }
    }

    /// Inside an array (just past `[`): positions at element `index`.
    fn element(&mut self, index: usize) -> Option<()> {
        let mut n = 0;
        loop {
            self.ws();
            if self.peek()? == b']' {
                return None;
            }
            if n == index {
                return Some(());
            }
            self.skip_value()?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.pos += 1;
                    n += 1;
                }
                _ => return None,
            }
        }
    }
}

impl<'a> Source<'a> {
    pub(crate) fn new(path: &'a str, text: &'a str) -> Self {
        Self { path, text }
    }

    /// Byte offset of the value at `json_path` (`""` = the document), or `None`.
    #[cfg(test)]
    pub(crate) fn find(&self, json_path: &str) -> Option<usize> {
        let (offset, complete) = self.deepest(json_path);
        complete.then_some(offset)
    }

    /// Byte offset of the value at `json_path`, or of its deepest existing ancestor; and
    /// whether the whole path was found.
    fn deepest(&self, json_path: &str) -> (usize, bool) {
        let mut s = Scanner {
            text: self.text,
            b: self.text.as_bytes(),
            pos: 0,
        };
        s.ws();
        let mut best = s.pos;
        for seg in segments(json_path) {
            let found = match (seg, s.peek()) {
                (Seg::Key(k), Some(b'{')) => {
                    s.pos += 1;
                    s.member(k)
                }
                (Seg::Index(i), Some(b'[')) => {
                    s.pos += 1;
                    s.element(i)
                }
                _ => None,
            };
            if found.is_none() {
                return (best, false);
            }
            best = s.pos;
        }
        (best, true)
    }

    /// The location of the value at `json_path`, or of its deepest existing ancestor (a missing
    /// key is reported where its object starts).
    pub(crate) fn locate(&self, json_path: &str) -> Location {
        self.at(self.deepest(json_path).0)
    }

    /// The location of `char_index` (a character of the *decoded* string) inside the JSON string
    /// at `json_path`; the string's value location when it is not a string.
    pub(crate) fn locate_in_string(&self, json_path: &str, char_index: usize) -> Location {
        let (start, _) = self.deepest(json_path);
        let b = self.text.as_bytes();
        if b.get(start) != Some(&b'"') {
            return self.at(start);
        }
        let mut pos = start + 1;
        let mut n = 0;
        while n < char_index && pos < b.len() && b[pos] != b'"' {
            if b[pos] == b'\\' {
                if b.get(pos + 1) == Some(&b'u') {
                    let high = self
                        .text
                        .get(pos + 2..pos + 6)
                        .and_then(|h| u16::from_str_radix(h, 16).ok());
                    let pair = matches!(high, Some(0xD800..=0xDBFF))
                        && self.text.get(pos + 6..pos + 8) == Some("\\u");
                    pos += if pair { 12 } else { 6 };
                } else {
                    pos += 2;
                }
            } else {
                pos += self.text[pos..].chars().next().map_or(1, char::len_utf8);
            }
            n += 1;
        }
        self.at(pos.min(b.len()))
    }

    /// `path:line:col` of a byte offset (column counted in characters, 1-based).
    pub(crate) fn at(&self, offset: usize) -> Location {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            path: self.path.to_owned(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }

    /// Byte offset of a serde_json error position: `line` is 1-based, `column` counts the
    /// bytes of that line consumed so far (so it is the 1-based column of the last byte read).
    pub(crate) fn serde_offset(&self, line: usize, column: usize) -> usize {
        let mut start = 0;
        for _ in 1..line {
            match self.text[start..].find('\n') {
                Some(i) => start += i + 1,
                None => return self.text.len(),
            }
        }
        let end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        (start + column.saturating_sub(1)).min(end)
    }

    /// The location of a serde_json error position.
    pub(crate) fn at_serde(&self, line: usize, column: usize) -> Location {
        self.at(self.serde_offset(line, column))
    }

    /// serde_json reports an unknown key at its closing quote: this is where the key starts.
    pub(crate) fn key_start(&self, line: usize, column: usize) -> Location {
        let end = self.serde_offset(line, column);
        let b = self.text.as_bytes();
        if b.get(end) != Some(&b'"') {
            return self.at(end);
        }
        let mut i = end;
        while i > 0 {
            i -= 1;
            if b[i] == b'"' {
                let backslashes = b[..i].iter().rev().take_while(|c| **c == b'\\').count();
                if backslashes % 2 == 0 {
                    return self.at(i);
                }
            }
        }
        self.at(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{
  "thresholds": {"log": 4, "alert": 9},
  "rules": [
    {"name": "a", "expr": "x"},
    {"name": "b\"q", "expr": "é\n\u00e9 y", "weight": [1, {"z": "]"}]},
    {"name": "c", "expr": "z"}
  ]
}"#;

    fn lc(src: &Source<'_>, path: &str) -> (usize, usize) {
        let l = src.locate(path);
        (l.line, l.column)
    }

    #[test]
    fn finds_values() {
        let s = Source::new("f", DOC);
        assert_eq!(lc(&s, ""), (1, 1));
        assert_eq!(lc(&s, "thresholds.alert"), (2, 37));
        assert_eq!(lc(&s, "rules[0].expr"), (4, 27));
        assert_eq!(lc(&s, "rules[1].weight"), (5, 55));
        assert_eq!(lc(&s, "rules[2]"), (6, 5));
        assert_eq!(lc(&s, "rules[2].expr"), (6, 27));
        assert!(s.find("rules[3]").is_none());
        assert!(s.find("rules[2].expr").is_some());
    }

    #[test]
    fn missing_falls_back_to_ancestor() {
        let s = Source::new("f", DOC);
        assert_eq!(lc(&s, "rules[9].expr"), (3, 12));
        assert_eq!(lc(&s, "analysis.lineage_max_depth"), (1, 1));
        assert_eq!(lc(&s, "thresholds.nope"), (2, 17));
    }

    #[test]
    fn offsets_inside_strings_follow_escapes() {
        let s = Source::new("f", DOC);
        // "é\n\u00e9 y": decoded chars é, \n, é, ' ', y
        let at = |i| {
            let l = s.locate_in_string("rules[1].expr", i);
            (l.line, l.column)
        };
        assert_eq!(at(0), (5, 31));
        assert_eq!(at(1), (5, 32));
        assert_eq!(at(2), (5, 34));
        assert_eq!(at(4), (5, 41));
        assert_eq!(at(99), (5, 42));
    }

    #[test]
    fn serde_positions() {
        let s = Source::new("f", "{\n  \"é\\\"k\": 1,\n}");
        // serde_json: line 2, column = bytes consumed, here the closing quote of the key.
        let end = "  \"é\\\"k\"".len();
        assert_eq!(
            s.at_serde(2, end),
            Location {
                path: "f".into(),
                line: 2,
                column: 8
            }
        );
        assert_eq!(s.key_start(2, end).column, 3);
        assert_eq!(s.at_serde(2, 0).column, 1);
        assert_eq!(s.at_serde(9, 9).line, 3);
        assert_eq!(s.at_serde(2, 99).column, 13);
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            "",
            "{",
            "[",
            "{\"a\"",
            "{\"a\":",
            "\"",
            "{\"rules\":[1,",
            "\u{e9}",
        ] {
            let s = Source::new("f", text);
            let _ = s.locate("rules[3].expr");
            let _ = s.locate_in_string("rules[3].expr", 7);
            let _ = s.at(100);
            let _ = s.key_start(1, 3);
            let _ = s.at_serde(3, 3);
        }
    }
}
