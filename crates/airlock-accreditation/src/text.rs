//! Small writers shared by the documents: JSON, CSV (RFC 4180), Markdown tables.

use serde_json::Value;

/// Pretty JSON with a final newline.
pub fn json(value: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("JSON values serialize");
    bytes.push(b'\n');
    bytes
}

/// A table: a header row and data rows of the same width.
pub struct Table {
    pub header: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Table {
        Table { header: header.to_vec(), rows: Vec::new() }
    }

    pub fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.header.len(), "row width");
        self.rows.push(row);
    }

    /// RFC 4180: CRLF line ends, fields quoted when they hold a comma, quote or line break.
    pub fn csv(&self) -> Vec<u8> {
        let line = |fields: Vec<&str>| -> String {
            let quoted: Vec<String> = fields
                .into_iter()
                .map(|f| {
                    if f.contains([',', '"', '\n', '\r']) {
                        format!("\"{}\"", f.replace('"', "\"\""))
                    } else {
                        f.to_string()
                    }
                })
                .collect();
            format!("{}\r\n", quoted.join(","))
        };
        let mut out = line(self.header.clone());
        for row in &self.rows {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
        }
        out.into_bytes()
    }

    /// A GitHub-flavoured Markdown table under a title and an introduction.
    pub fn markdown(&self, title: &str, intro: &str) -> Vec<u8> {
        format!("# {title}\n\n{intro}\n\n{}", self.markdown_table()).into_bytes()
    }

    /// The GitHub-flavoured Markdown table alone.
    pub fn markdown_table(&self) -> String {
        let cell = |text: &str| text.replace('|', "\\|").replace(['\r', '\n'], " ");
        let mut out = String::new();
        out.push_str(&format!("| {} |\n", self.header.join(" | ")));
        out.push_str(&format!("|{}\n", "---|".repeat(self.header.len())));
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out
    }
}

/// "a, b and c".
pub fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// "1 owner", "2 owners".
pub fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut t = Table::new(&["a", "b"]);
        t.push(vec!["plain".into(), "with, comma and \"quote\"".into()]);
        assert_eq!(String::from_utf8(t.csv()).unwrap(), "a,b\r\nplain,\"with, comma and \"\"quote\"\"\"\r\n");
    }

    #[test]
    fn markdown_escapes_pipes() {
        let mut t = Table::new(&["x"]);
        t.push(vec!["a|b\nc".into()]);
        let md = String::from_utf8(t.markdown("T", "intro")).unwrap();
        assert!(md.ends_with("| x |\n|---|\n| a\\|b c |\n"), "{md}");
    }

    #[test]
    fn lists_read_naturally() {
        assert_eq!(join_and(&["a".into(), "b".into(), "c".into()]), "a, b and c");
        assert_eq!(count(2, "key", "keys"), "2 keys");
    }
}
