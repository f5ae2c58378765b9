//! What the commands print: aligned tables for people (a bold header only on a terminal, and
//! never with `NO_COLOR` set), one JSON document per command (or per line, for the streaming
//! ones) for scripts.

use std::io::{IsTerminal as _, Write as _};

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned tables and plain lines.
    Text,
    /// JSON.
    Json,
}

/// Where a command's results go.
#[derive(Debug)]
pub struct Out {
    format: Format,
    colour: bool,
}

impl Out {
    pub fn new(format: Format) -> Self {
        let colour = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Self { format, colour }
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// One JSON document, on one line.
    pub fn value(&self, value: &serde_json::Value) {
        println!("{value}");
    }

    /// A line of text.
    pub fn line(&self, text: impl AsRef<str>) {
        println!("{}", text.as_ref());
    }

    /// A table: the header row, then the rows, each column as wide as its widest cell.
    pub fn table(&self, header: &[&str], rows: &[Vec<String>]) {
        print!("{}", render(header, rows, self.colour));
        let _ = std::io::stdout().flush();
    }
}

/// The table as text; cells are shown with control characters escaped, so that a name
/// cannot move the cursor or clear the screen.
pub fn render(header: &[&str], rows: &[Vec<String>], colour: bool) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| printable(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut text = String::new();
    let line = |cells: &mut dyn Iterator<Item = &str>, text: &mut String| {
        let cells: Vec<&str> = cells.collect();
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            text.push_str(cell);
            if i < last {
                let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        text.push('\n');
    };
    if colour {
        text.push_str("\x1b[1m");
    }
    let mut head = String::new();
    line(&mut header.iter().copied(), &mut head);
    if colour {
        text.push_str(head.trim_end_matches('\n'));
        text.push_str("\x1b[0m\n");
    } else {
        text.push_str(&head);
    }
    for row in &rows {
        line(&mut row.iter().map(String::as_str), &mut text);
    }
    text
}

/// `text` with control characters shown as escapes.
pub fn printable(text: &str) -> String {
    if text.chars().any(char::is_control) {
        text.escape_debug().to_string()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_control_characters_are_escaped() {
        let rows = vec![
            vec![
                "student_service".to_owned(),
                "latest".to_owned(),
                "2".to_owned(),
            ],
            vec!["a\x1b[2Jb".to_owned(), "v1".to_owned(), "1".to_owned()],
        ];
        let text = render(&["SERVICE", "VERSION", "NODES"], &rows, false);
        assert_eq!(
            text,
            "SERVICE          VERSION  NODES\n\
             student_service  latest   2\n\
             a\\u{1b}[2Jb      v1       1\n"
        );
        let bold = render(&["A"], &[], true);
        assert_eq!(bold, "\x1b[1mA\x1b[0m\n");
    }
}
