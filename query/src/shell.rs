//! The interactive shell `auditq` opens when it gets no statement and standard input is a
//! terminal (and the statements it runs from piped standard input): statements across lines,
//! each ended by `;`; dot commands (`.tables`, `.schema TABLE`, `.format FMT`, `.timer on|off`,
//! `.help`, `.quit`); completion of table names, column names, dot commands and keywords;
//! history kept between runs. What is pure (splitting input, completion) is here; running a
//! statement is the binary's, with the same limits and read-only rules as `auditq "SQL"`.

use std::borrow::Cow;

use auditq_model::Table;
use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

/// What one entry of the shell asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A statement (without its `;`).
    Sql(String),
    /// A dot command and its argument.
    Dot(String, Option<String>),
}

/// Cuts `text` into entries: statements ended by `;` outside quotes and comments, and dot
/// commands, one a line, where a statement would start. Returns the entries and what is left
/// (a statement not ended yet).
pub fn entries(text: &str) -> (Vec<Entry>, String) {
    let mut found = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for line in text.split_inclusive('\n') {
        if quote.is_none() && current.trim().is_empty() && line.trim_start().starts_with('.') {
            let mut words = line.trim().splitn(2, char::is_whitespace);
            let name = words.next().unwrap_or("").to_string();
            let argument = words
                .next()
                .map(|a| a.trim().trim_end_matches(';').trim().to_string())
                .filter(|a| !a.is_empty());
            found.push(Entry::Dot(name, argument));
            current.clear();
            continue;
        }
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (quote, c) {
                (Some(q), c) if c == q => {
                    quote = None;
                    current.push(c);
                }
                (Some(_), c) => current.push(c),
                (None, '\'' | '"') => {
                    quote = Some(c);
                    current.push(c);
                }
                (None, '-') if chars.peek() == Some(&'-') => {
                    // A comment, to the end of the line.
                    if line.ends_with('\n') {
                        current.push('\n');
                    }
                    break;
                }
                (None, ';') => {
                    let statement = current.trim().to_string();
                    if !statement.is_empty() {
                        found.push(Entry::Sql(statement));
                    }
                    current.clear();
                }
                (None, c) => current.push(c),
            }
        }
    }
    (found, current.trim_start().to_string())
}

/// Completion of table names, column names, dot commands and keywords.
#[derive(Debug, Clone)]
pub struct Completion {
    words: Vec<String>,
}

/// The dot commands, for `.help` and completion.
pub const DOT_COMMANDS: [(&str, &str); 6] = [
    (".tables", "the tables, with their rows and what they hold"),
    (".schema", ".schema TABLE: its columns and types"),
    (
        ".format",
        ".format table|csv|json|ndjson: how answers are written",
    ),
    (
        ".timer",
        ".timer on|off: the time of each statement on standard error",
    ),
    (".help", "this list"),
    (".quit", "leave (also .exit, or Ctrl-D)"),
];

const KEYWORDS: [&str; 24] = [
    "select", "from", "where", "group by", "order by", "limit", "having", "like", "ilike", "and",
    "or", "not", "null", "is", "in", "as", "count", "distinct", "join", "on", "with", "desc",
    "between", "interval",
];

impl Default for Completion {
    fn default() -> Self {
        let mut words: Vec<String> = Table::ALL.iter().map(|t| t.name().to_string()).collect();
        for table in Table::ALL {
            words.extend(table.schema().fields().iter().map(|f| f.name().clone()));
        }
        words.extend(KEYWORDS.iter().map(|k| k.to_string()));
        words.extend(DOT_COMMANDS.iter().map(|(d, _)| d.to_string()));
        words.push(".exit".to_string());
        words.sort();
        words.dedup();
        Self { words }
    }
}

impl Completion {
    /// Where the word before `pos` starts, and the words it may become.
    pub fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let before = &line[..pos];
        let start = before
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .map_or(0, |i| i + 1);
        let word = before[start..].to_lowercase();
        if word.is_empty() {
            return (start, Vec::new());
        }
        let dot = word.starts_with('.');
        let found = self
            .words
            .iter()
            .filter(|w| w.starts_with('.') == dot && w.starts_with(&word) && **w != word)
            .cloned()
            .collect();
        (start, found)
    }
}

impl Completer for Completion {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(self.candidates(line, pos))
    }
}

impl Hinter for Completion {
    type Hint = String;
}

impl Highlighter for Completion {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for Completion {}

impl Helper for Completion {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_end_at_semicolons_outside_quotes() {
        let (found, rest) = entries(
            "select 1;\nselect cmd\n  where cmd like 'a;b';\nselect \"x;y\" from t; select 2",
        );
        assert_eq!(
            found,
            [
                Entry::Sql("select 1".into()),
                Entry::Sql("select cmd\n  where cmd like 'a;b'".into()),
                Entry::Sql("select \"x;y\" from t".into()),
            ]
        );
        assert_eq!(rest, "select 2");
    }

    #[test]
    fn dot_commands_stand_where_a_statement_would_start() {
        let (found, rest) = entries(".tables\n.schema sessions;\n.format csv\nselect 1;\n");
        assert_eq!(
            found,
            [
                Entry::Dot(".tables".into(), None),
                Entry::Dot(".schema".into(), Some("sessions".into())),
                Entry::Dot(".format".into(), Some("csv".into())),
                Entry::Sql("select 1".into()),
            ]
        );
        assert_eq!(rest, "");
    }

    #[test]
    fn comments_do_not_end_statements() {
        let (found, rest) = entries("select 1 -- a comment; not the end\n, 2;\n");
        assert_eq!(found, [Entry::Sql("select 1 \n, 2".into())]);
        assert_eq!(rest, "");
    }

    #[test]
    fn completion_knows_tables_columns_dot_commands_and_keywords() {
        let completion = Completion::default();
        let (start, words) = completion.candidates("select * from sess", 18);
        assert_eq!(start, 14);
        assert!(words.contains(&"sessions".to_string()), "{words:?}");
        let (_, words) = completion.candidates("select principal_", 17);
        assert!(words.contains(&"principal_arn".to_string()), "{words:?}");
        let (_, words) = completion.candidates(".sch", 4);
        assert_eq!(words, [".schema"]);
        let (_, words) = completion.candidates("SEL", 3);
        assert_eq!(words, ["select"]);
        assert!(completion.candidates("select ", 7).1.is_empty());
    }
}
